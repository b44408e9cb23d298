using System.Diagnostics;
using System.Globalization;

namespace RaftPS.Bench;

/// <summary>What Linux's /proc says about the server processes (memory, CPU, how they were started).</summary>
static class ProcInfo
{
    const double ClockTicksPerSecond = 100.0; // USER_HZ, 100 on Linux x86-64 and arm64

    static long? StatusField(int pid, string field)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
                if (line.StartsWith(field, StringComparison.Ordinal) && line.Length > field.Length && line[field.Length] == ':')
                {
                    var parts = line[(field.Length + 1)..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return long.Parse(parts[0], CultureInfo.InvariantCulture);
                }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    /// <summary>User + system CPU seconds of all <paramref name="pids"/> so far; null when one cannot be read.</summary>
    public static double? CpuSeconds(IReadOnlyList<int> pids)
    {
        double total = 0;
        foreach (int pid in pids)
        {
            if (CpuSeconds(pid) is not double seconds) return null;
            total += seconds;
        }
        return total;
    }

    public static long? RssKib(int pid) => StatusField(pid, "VmRSS");
    public static long? PeakRssKib(int pid) => StatusField(pid, "VmHWM");

    /// <summary>User + system CPU seconds the process has used so far.</summary>
    public static double? CpuSeconds(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            // Fields after the command name (which may hold spaces) start at state, field 3.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            long utime = long.Parse(fields[11], CultureInfo.InvariantCulture);
            long stime = long.Parse(fields[12], CultureInfo.InvariantCulture);
            return (utime + stime) / ClockTicksPerSecond;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>How many ESTABLISHED TCP connections this process has open to each of <paramref name="ports"/>
    /// (remote port, loopback): the sockets among /proc/self/fd matched against /proc/self/net/tcp and tcp6.
    /// Null where /proc cannot be read.</summary>
    public static int[]? OwnConnectionsTo(IReadOnlyList<int> ports)
    {
        try
        {
            var inodes = new HashSet<string>(StringComparer.Ordinal);
            foreach (var fd in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
            {
                string? link = null;
                try { link = new FileInfo(fd).LinkTarget; } catch (IOException) { } // closed meanwhile
                if (link is not null && link.StartsWith("socket:[", StringComparison.Ordinal)) inodes.Add(link[8..^1]);
            }
            var counts = new int[ports.Count];
            foreach (var table in new[] { "/proc/self/net/tcp", "/proc/self/net/tcp6" })
            {
                if (!File.Exists(table)) continue;
                foreach (var line in File.ReadLines(table).Skip(1))
                {
                    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
                    var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (f.Length < 10 || f[3] != "01" || !inodes.Contains(f[9])) continue; // 01 = ESTABLISHED
                    int port = int.Parse(f[2][(f[2].LastIndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    for (int i = 0; i < ports.Count; i++) if (ports[i] == port) counts[i]++;
                }
            }
            return counts;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public static bool IsAlive(int pid) => Directory.Exists($"/proc/{pid}");

    public static string[] CommandLine(int pid) =>
        File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);

    public static Dictionary<string, string> Environment(int pid)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in File.ReadAllText($"/proc/{pid}/environ").Split('\0', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = entry.IndexOf('=');
            if (eq > 0) env[entry[..eq]] = entry[(eq + 1)..];
        }
        return env;
    }

    public static string WorkingDirectory(int pid) =>
        new FileInfo($"/proc/{pid}/cwd").LinkTarget ?? throw new IOException($"cannot read the working directory of {pid}");

    /// <summary>One PID per line, in the order of the endpoints.</summary>
    public static int[] ReadPids(string path)
    {
        var pids = new List<int>();
        foreach (var line in File.ReadAllLines(path))
        {
            var t = line.Trim();
            if (t.Length == 0 || t.StartsWith('#')) continue;
            pids.Add(int.Parse(t.Split(' ', StringSplitOptions.RemoveEmptyEntries)[^1], CultureInfo.InvariantCulture));
        }
        return pids.ToArray();
    }

    public static void WritePids(string path, int[] pids)
    {
        string tmp = path + ".tmp";
        File.WriteAllLines(tmp, Array.ConvertAll(pids, p => p.ToString(CultureInfo.InvariantCulture)));
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>A snapshot of how a server process was started, taken before it is killed.</summary>
    public sealed record Launch(string[] CommandLine, string WorkingDirectory, Dictionary<string, string> Environment)
    {
        public static Launch Of(int pid) => new(ProcInfo.CommandLine(pid), ProcInfo.WorkingDirectory(pid), ProcInfo.Environment(pid));

        /// <summary>Starts it again the same way, output appended to <paramref name="log"/>; returns the new PID.
        /// Through `sh -c exec`, so the PID is the server's own.</summary>
        public int Start(string log)
        {
            var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, WorkingDirectory = WorkingDirectory };
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add("exec \"$@\" >> \"$RAFTPS_BENCH_LOG\" 2>&1 < /dev/null");
            psi.ArgumentList.Add("sh");
            foreach (var arg in CommandLine) psi.ArgumentList.Add(arg);
            psi.Environment.Clear();
            foreach (var (k, v) in Environment) psi.Environment[k] = v;
            psi.Environment["RAFTPS_BENCH_LOG"] = log;
            using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {CommandLine[0]}");
            return p.Id;
        }
    }

    /// <summary>kill -9, only for a process that is one of the servers this program may stop.</summary>
    public static void KillServer(int pid)
    {
        using var p = Process.GetProcessById(pid);
        p.Kill();
    }

    /// <summary>The servers bench/run.sh starts: the only processes the fail-over mode may kill.</summary>
    private static readonly string[] KillableServers = ["etcd", "RaftServer", "DotNextNode"];

    public static void CheckIsServer(int pid)
    {
        if (!IsAlive(pid)) throw new InvalidOperationException($"process {pid} is not running");
        var cmd = string.Join(' ', CommandLine(pid));
        if (!KillableServers.Any(name => cmd.Contains(name, StringComparison.Ordinal)))
            throw new InvalidOperationException($"process {pid} ({cmd}) is none of {string.Join(", ", KillableServers)}: refusing to kill it");
    }
}
