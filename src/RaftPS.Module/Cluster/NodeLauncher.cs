using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace RaftPS.Cluster;

/// <summary>A server process this session started, with what is needed to report and stop it.</summary>
internal sealed class LaunchedNode(RaftNodeProcess info, Process process, long logStart, ProcessIdentity? identity = null, IReadOnlyCollection<string>? executables = null)
{
    public RaftNodeProcess Info { get; } = info;
    public Process Process { get; } = process;
    /// <summary>Length of the log file before this run: the run's own lines start here.</summary>
    public long LogStart { get; } = logStart;
    /// <summary>The process as started (Unix; null on Windows, where the handle this session holds
    /// keeps its id from being reused, or when it had ended before it could be read).</summary>
    public ProcessIdentity? Identity { get; } = identity;
    /// <summary>The programs its executable may be: the server's (or dotnet's) and the launch chain's.</summary>
    public IReadOnlyCollection<string> Executables { get; } = executables ?? [];

    /// <summary>
    /// Whether a signal sent to <see cref="Process"/>'s id now reaches this node: on Unix the id is
    /// read again and must still be the process started (<see cref="ProcessIdentity"/>), since
    /// once it has ended and been reaped the id may belong to another program.
    /// </summary>
    public bool IsStillOurs
    {
        get
        {
            if (HasExited) return false;
            if (OperatingSystem.IsWindows()) return true;
            return Identity is { } id && id.StillRuns(Executables);
        }
    }

    public bool HasExited
    {
        get
        {
            try { return Process.HasExited; }
            catch (InvalidOperationException) { return true; }
        }
    }
}

/// <summary>Starts and stops RaftServer processes from the binaries shipped in the module folder.</summary>
internal static class NodeLauncher
{
    public const string LogFileName = "node.log";

    /// <summary>The module's server folder: &lt;module base&gt;/server/.</summary>
    public static string ServerDirectory =>
        Path.Combine(Path.GetDirectoryName(typeof(NodeLauncher).Assembly.Location)!, "server");

    /// <param name="join">A member of an existing cluster: the node joins it (--join) instead of
    /// bootstrapping from <paramref name="configPath"/>, which then only names the group the node is
    /// registered under (Stop-RaftCluster -ConfigPath).</param>
    /// <param name="securityArguments">The TLS and auth options (Start-RaftCluster -Secure), each its own argument.</param>
    public static LaunchedNode Start(ConfigNode node, string configPath, string dataDirectory, string? extraArguments, string? join = null,
        IReadOnlyList<string>? securityArguments = null)
    {
        var nodeDirectory = Path.Combine(dataDirectory, $"node-{node.Id}");
        Directory.CreateDirectory(nodeDirectory);
        var logPath = Path.Combine(nodeDirectory, LogFileName);
        var logStart = File.Exists(logPath) ? new FileInfo(logPath).Length : 0;
        File.AppendAllText(logPath, $"--- {DateTime.UtcNow:O} Start-RaftCluster: node {node.Id} ({node.Host}:{node.Port}){(join is null ? "" : $" joining through {join}")}\n");
        logStart = new FileInfo(logPath).Length;

        var server = FindServer() ?? throw new FileNotFoundException(ServerLocator.Missing(ServerDirectory));
        var arguments = new List<string>(ServerCommand(server))
        {
            node.Id.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--data-dir", nodeDirectory,
        };
        if (join is null) arguments.AddRange(["--config", configPath]);
        else arguments.AddRange(["--join", join]);
        if (securityArguments is not null) arguments.AddRange(securityArguments);
        // Start-RaftCluster runs local clusters, for trying things and tests: Suspend-RaftNode works on them.
        arguments.Add("--allow-suspend");
        if (!string.IsNullOrWhiteSpace(extraArguments))
            arguments.AddRange(extraArguments.Split(' ', StringSplitOptions.RemoveEmptyEntries));

        Process process;
        ProcessIdentity? identity = null;
        IReadOnlyCollection<string> executables = [];
        if (OperatingSystem.IsWindows())
        {
            process = StartRedirected(arguments, nodeDirectory, logPath);
            TieToSession(process);
        }
        else
            process = StartDetached(arguments, nodeDirectory, logPath, out identity, out executables);

        var info = new RaftNodeProcess
        {
            Id = node.Id,
            Address = node.Host,
            Port = node.Port,
            ProcessId = process.Id,
            DataDirectory = nodeDirectory,
            LogPath = logPath,
            ConfigPath = configPath,
        };
        return new LaunchedNode(info, process, logStart, identity, executables);
    }

    /// <summary>
    /// The server for this machine that the module ships (<see cref="ServerLocator"/>), made
    /// runnable (<see cref="ExecutableFile"/>); null when there is none.
    /// </summary>
    /// <exception cref="IOException">the server could not be made executable.</exception>
    /// <exception cref="UnauthorizedAccessException">the server could not be made executable.</exception>
    public static ServerBinary? FindServer()
    {
        var server = ServerLocator.Find(ServerDirectory);
        if (server is null || server.RunsUnderDotnet) return server;
        return server with { Path = ExecutableFile.EnsureRunnable(server.Path, Path.Combine(UserFolders.Root, "server", server.RuntimeIdentifier!)) };
    }

    /// <summary>The program and leading arguments that run a server: a dll runs under dotnet, an executable by itself.</summary>
    public static string[] ServerCommand(ServerBinary server) =>
        server.RunsUnderDotnet ? [FindDotnet(), server.Path] : [server.Path];

    /// <summary>
    /// Unix: the server runs in its own session (setsid), so Ctrl+C in the terminal does not reach
    /// it, with stdout and stderr appended to its log by the shell, which then execs the server (or
    /// dotnet): the process id we get is the server's own.
    /// </summary>
    private static Process StartDetached(List<string> arguments, string workingDirectory, string logPath,
        out ProcessIdentity? identity, out IReadOnlyCollection<string> executables)
    {
        var setsid = new[] { "/usr/bin/setsid", "/bin/setsid" }.FirstOrDefault(File.Exists);
        var start = new ProcessStartInfo
        {
            FileName = setsid ?? "/bin/sh",
            WorkingDirectory = workingDirectory,
            UseShellExecute = false,
        };
        if (setsid is not null) start.ArgumentList.Add("/bin/sh");
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("exec \"$0\" \"$@\" </dev/null >>\"$RAFTPS_NODE_LOG\" 2>&1");
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        start.Environment["RAFTPS_NODE_LOG"] = logPath;
        var process = Process.Start(start) ?? throw new InvalidOperationException("the server process did not start");
        // Read at once: the start time holds through the execs of setsid and sh (null: it has already ended).
        identity = ProcessIdentity.Read(process.Id);
        executables = WithLinkTargets([arguments[0], setsid, "/bin/sh"]);
        if (identity is not null && Owner is { } owner) NodeWatchdog.Start(setsid, owner, identity)?.Dispose();
        return process;
    }

    /// <summary>This PowerShell process, as the watchdogs check it is still running.</summary>
    private static readonly ProcessIdentity? Owner = OperatingSystem.IsWindows() ? null : ProcessIdentity.Read(Environment.ProcessId);

    /// <summary>The paths and, for symbolic links (/bin/sh to dash, dotnet on PATH), what they point to.</summary>
    private static IReadOnlyCollection<string> WithLinkTargets(IEnumerable<string?> paths)
    {
        var all = new List<string>();
        foreach (var path in paths)
        {
            if (path is null) continue;
            all.Add(path);
            try
            {
                if (new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true) is { } target) all.Add(target.FullName);
            }
            catch (IOException)
            {
                // Unresolvable: the name as given.
            }
        }
        return all;
    }

    /// <summary>
    /// Windows: the node joins the session's Job Object, so it ends with this process however that
    /// ends. A node that cannot join is stopped at once rather than left to outlive the session.
    /// </summary>
    [System.Runtime.Versioning.SupportedOSPlatform("windows")]
    private static void TieToSession(Process process)
    {
        try
        {
            WindowsJobObject.Assign(process);
        }
        catch (System.ComponentModel.Win32Exception) when (process.HasExited)
        {
            // It died at once (a bad config, a port in use): the start-up wait reports it with its log.
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            throw new InvalidOperationException($"{e.Message}: {e.NativeErrorCode}. The node was stopped.", e);
        }
    }

    private static Process StartRedirected(List<string> arguments, string workingDirectory, string logPath)
    {
        var start = new ProcessStartInfo
        {
            FileName = arguments[0],
            WorkingDirectory = workingDirectory,
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            CreateNoWindow = true,
        };
        foreach (var argument in arguments.Skip(1)) start.ArgumentList.Add(argument);
        var process = Process.Start(start) ?? throw new InvalidOperationException("the server process did not start");
        var log = new StreamWriter(new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        var gate = new object();
        void Append(object _, DataReceivedEventArgs e) { if (e.Data is not null) lock (gate) log.WriteLine(e.Data); }
        process.OutputDataReceived += Append;
        process.ErrorDataReceived += Append;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>The dotnet host running us (dotnet pwsh), else DOTNET_ROOT's, else the one on PATH.</summary>
    public static string FindDotnet()
    {
        var exe = OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet";
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileName(self).Equals(exe, StringComparison.OrdinalIgnoreCase))
            return self;
        foreach (var variable in new[] { "DOTNET_HOST_PATH", "DOTNET_ROOT" })
        {
            var value = Environment.GetEnvironmentVariable(variable);
            if (string.IsNullOrEmpty(value)) continue;
            var candidate = variable == "DOTNET_ROOT" ? Path.Combine(value, exe) : value;
            if (File.Exists(candidate)) return candidate;
        }
        return exe;
    }

    /// <summary>Stops a node: SIGTERM and a short grace period on Unix, then a kill; each only
    /// while its process id still belongs to the node (<see cref="LaunchedNode.IsStillOurs"/>).</summary>
    public static void Stop(LaunchedNode node, TimeSpan grace)
    {
        if (!node.IsStillOurs) return;
        try
        {
            if (!OperatingSystem.IsWindows() && SendSignal(node.Process.Id, 15) == 0
                && node.Process.WaitForExit((int)grace.TotalMilliseconds))
                return;
            if (!node.IsStillOurs) return;
            node.Process.Kill(entireProcessTree: true);
            node.Process.WaitForExit(5000);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);

    /// <summary>The last lines this run wrote to the node's log.</summary>
    public static string TailLog(LaunchedNode node, int lines = 15)
    {
        try
        {
            using var stream = new FileStream(node.Info.LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var start = Math.Max(node.LogStart, stream.Length - 16 * 1024);
            stream.Seek(start, SeekOrigin.Begin);
            var text = new StreamReader(stream, Encoding.UTF8).ReadToEnd();
            // Stack frames say little to the user and push the message out of view: leave them out.
            var all = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r'))
                .Where(l => !l.TrimStart().StartsWith("at ", StringComparison.Ordinal) && !l.TrimStart().StartsWith("--- End of", StringComparison.Ordinal));
            var tail = all.TakeLast(lines).ToList();
            return tail.Count == 0 ? "(the log is empty)" : string.Join(Environment.NewLine, tail);
        }
        catch (IOException e)
        {
            return $"(the log could not be read: {e.Message})";
        }
    }
}
