using System.Diagnostics;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace RaftServer.Tests.Integration;

/// <summary>
/// The retransmission timeouts of processes' TCP connections, as <c>ss -tnpi</c> shows them (Linux):
/// the kernel's timeout is the floor (TCP_RTO_MIN_US, default 200 ms) plus the round trip, so on
/// loopback it shows the floor a connection was given.
/// </summary>
internal static partial class TcpRetransmitTimeouts
{
    /// <summary>Why this cannot be checked here (not Linux, no ss, a kernel without TCP_RTO_MIN_US), or null.</summary>
    public static string? Unavailable()
    {
        if (!OperatingSystem.IsLinux()) return "Linux only";
        try
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            socket.SetRawSocketOption(6, 45, BitConverter.GetBytes(50_000));
        }
        catch (SocketException e)
        {
            return $"this kernel has no TCP_RTO_MIN_US: {e.Message}";
        }
        try
        {
            Run();
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return $"ss (iproute2) cannot be run: {e.Message}";
        }
        return null;
    }

    /// <summary>Each established connection of the processes <paramref name="pids"/>: its local and remote address and its timeout in ms.</summary>
    public static List<(int Pid, string Local, string Remote, double RtoMs)> Of(IReadOnlyCollection<int> pids)
    {
        var lines = Run().Split('\n');
        var found = new List<(int, string, string, double)>();
        for (var i = 0; i + 1 < lines.Length; i++)
        {
            var head = Head().Match(lines[i]);
            if (!head.Success) continue;
            var pid = int.Parse(head.Groups["pid"].Value);
            var rto = Rto().Match(lines[i + 1]);
            if (!pids.Contains(pid) || !rto.Success) continue;
            found.Add((pid, head.Groups["local"].Value, head.Groups["remote"].Value, double.Parse(rto.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)));
        }
        return found;
    }

    private static string Run()
    {
        var psi = new ProcessStartInfo("ss", "-tnpi state established") { RedirectStandardOutput = true, RedirectStandardError = true };
        using var ss = Process.Start(psi) ?? throw new InvalidOperationException("ss did not start");
        var output = ss.StandardOutput.ReadToEnd();
        ss.WaitForExit();
        if (ss.ExitCode != 0) throw new InvalidOperationException($"ss exited with {ss.ExitCode}: {ss.StandardError.ReadToEnd()}");
        return output;
    }

    // "0  0  127.0.0.1:41234  127.0.0.1:5001  users:(("RaftServer",pid=123,fd=45))"
    [GeneratedRegex(@"^\s*\d+\s+\d+\s+(?<local>\S+)\s+(?<remote>\S+)\s+users:\(\(""[^""]*"",pid=(?<pid>\d+),")]
    private static partial Regex Head();

    [GeneratedRegex(@"\brto:([\d.]+)")]
    private static partial Regex Rto();
}
