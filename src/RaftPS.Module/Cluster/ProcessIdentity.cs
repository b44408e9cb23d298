using System.Diagnostics;
using System.Globalization;

namespace RaftPS.Cluster;

/// <summary>
/// A process as it was when this session started it: its id, which the OS hands to another process
/// once this one has ended, and its start time, which it does not. Before the module signals a node
/// (Stop-RaftCluster, the session's exit, the watchdog) it reads them again and signals only when
/// they still match, so a recycled id is never killed.
/// <list type="bullet">
/// <item>Linux: the start time is field 22 of <c>/proc/PID/stat</c>, in clock ticks since boot
/// (10 ms): another process with the same id and start time would have to be made within the same
/// tick as the one it replaces, after it ended. The executable (<c>/proc/PID/exe</c>) is compared
/// too, by file name: the node's own or one of the launch chain (setsid, sh) that execs it.</item>
/// <item>Other Unix (macOS): <c>ps -o lstart=</c> (to the second: ids are handed out in turn, so one
/// comes back only after the whole range was used); no executable.</item>
/// </list>
/// Pure .NET, no PowerShell: the tests compile this file too.
/// </summary>
internal sealed record ProcessIdentity(int ProcessId, string StartTime, string? Executable)
{
    /// <summary>The identity of process <paramref name="pid"/> now; null when there is none (or it cannot be read).</summary>
    public static ProcessIdentity? Read(int pid)
    {
        try
        {
            if (OperatingSystem.IsLinux()) return ReadProc(pid);
            if (OperatingSystem.IsWindows())
            {
                using var p = Process.GetProcessById(pid);
                return new ProcessIdentity(pid, p.StartTime.ToUniversalTime().Ticks.ToString(CultureInfo.InvariantCulture), null);
            }
            return ReadPs(pid);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }

    private static ProcessIdentity? ReadProc(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var start = StartTimeFromStat(stat);
        if (start is null) return null;
        string? exe = null;
        try
        {
            exe = new FileInfo($"/proc/{pid}/exe").LinkTarget;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Another user's process: the start time alone decides.
        }
        return new ProcessIdentity(pid, start, exe);
    }

    /// <summary>Field 22 (starttime) of a <c>/proc/PID/stat</c> line. The command name (field 2) is in
    /// parentheses and may hold spaces and parentheses itself: the fields are counted after its last ')'.</summary>
    internal static string? StartTimeFromStat(string stat)
    {
        var close = stat.LastIndexOf(')');
        if (close < 0) return null;
        var fields = stat[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // fields[0] is field 3 (state), so field 22 is fields[19].
        return fields.Length > 19 ? fields[19] : null;
    }

    private static ProcessIdentity? ReadPs(int pid)
    {
        var ps = new ProcessStartInfo("ps") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-o", "lstart=", "-p", pid.ToString(CultureInfo.InvariantCulture) }) ps.ArgumentList.Add(a);
        using var p = Process.Start(ps);
        if (p is null) return null;
        var text = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        var start = NormalizeSpaces(text);
        return p.ExitCode == 0 && start.Length > 0 ? new ProcessIdentity(pid, start, null) : null;
    }

    /// <summary>Runs of blanks as one space, trimmed: as the watchdog's <c>echo $(ps ...)</c> prints it.</summary>
    internal static string NormalizeSpaces(string text) =>
        string.Join(' ', text.Split([' ', '\t', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries));

    /// <summary>
    /// Whether <paramref name="current"/> (read now) is the process this identity was read from:
    /// the same id and start time and, when both executables are known, an executable named as one
    /// of <paramref name="executables"/> (the node's and its launch chain's; empty: any).
    /// </summary>
    public bool Matches(ProcessIdentity? current, IReadOnlyCollection<string> executables)
    {
        if (current is null || current.ProcessId != ProcessId || current.StartTime != StartTime) return false;
        if (current.Executable is null || executables.Count == 0) return true;
        // A binary replaced while it runs reads "/path/RaftServer (deleted)".
        var name = Path.GetFileName(current.Executable.EndsWith(" (deleted)", StringComparison.Ordinal) ? current.Executable[..^10] : current.Executable);
        return executables.Any(e => string.Equals(Path.GetFileName(e), name, OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal));
    }

    /// <summary>Whether the process this identity was read from is still running (read again now).</summary>
    public bool StillRuns(IReadOnlyCollection<string> executables) => Matches(Read(ProcessId), executables);
}
