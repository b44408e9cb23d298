using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace RaftServer.Tests.Integration;

/// <summary>
/// One RaftServer process, its output captured line by line: the server named by RAFTPS_SERVER
/// (build.ps1 test points it at the module folder's native executable), else RaftServer.dll of
/// this build, run by dotnet.
/// </summary>
public sealed class ServerProcess : IDisposable
{
    private readonly Process _process;
    private readonly List<string> _lines = new();
    private readonly object _gate = new();

    public int Id { get; }

    private ServerProcess(int id, Process process)
    {
        Id = id;
        _process = process;
    }

    /// <summary>The environment variable naming the server to test: a .dll runs under dotnet, anything else directly.</summary>
    public const string ServerVariable = "RAFTPS_SERVER";

    /// <summary>The server every test starts (see <see cref="ServerVariable"/>).</summary>
    public static string Server { get; } = LocateServer();

    private static string LocateServer()
    {
        var named = Environment.GetEnvironmentVariable(ServerVariable);
        string server;
        if (!string.IsNullOrEmpty(named))
        {
            server = Path.GetFullPath(named);
            // A wrong path would otherwise fail every test with a confusing start-up error.
            if (!File.Exists(server)) throw new FileNotFoundException($"{ServerVariable}={named}: no such file", server);
        }
        else
        {
            server = LocateServerDll();
        }
        // Once per test run: which binary the real-process tests exercise (dotnet test shows a
        // test's console output with --logger "console;verbosity=detailed"; build.ps1 test prints
        // RAFTPS_SERVER itself).
        Console.WriteLine($"RaftServer.Tests: real-process tests run {server}" +
            (string.IsNullOrEmpty(named) ? $" ({ServerVariable} not set)" : $" (from {ServerVariable})"));
        return server;
    }

    /// <summary>src/RaftServer/bin/&lt;Configuration&gt;/net10.0/RaftServer.dll of the build this test assembly belongs to.</summary>
    private static string LocateServerDll()
    {
        var baseDir = AppContext.BaseDirectory; // tests/RaftServer.Tests/bin/<Configuration>/net10.0/
        var configuration = new DirectoryInfo(baseDir).Parent!.Name;
        for (var dir = new DirectoryInfo(baseDir); dir is not null; dir = dir.Parent)
        {
            if (!File.Exists(Path.Combine(dir.FullName, "RaftPS.sln"))) continue;
            var candidate = Path.Combine(dir.FullName, "src", "RaftServer", "bin", configuration, "net10.0", "RaftServer.dll");
            if (File.Exists(candidate)) return candidate;
        }
        // Fallback: the copy beside the tests (project reference).
        return Path.Combine(baseDir, "RaftServer.dll");
    }

    public static ServerProcess Start(int id, string workDir, params string[] args) => StartIn(null, id, workDir, args);

    /// <summary>
    /// Starts the server inside the network namespace <paramref name="netns"/> (<c>ip netns exec</c>,
    /// which execs it: the process is the server's) or, when null, in this one.
    /// </summary>
    /// <param name="clock">When given, each output line starts with its time on this clock ("[12345 ms] ").</param>
    public static ServerProcess StartIn(string? netns, int id, string workDir, IReadOnlyList<string> args,
        IReadOnlyDictionary<string, string>? environment = null, Func<long>? clock = null)
    {
        var runsUnderDotnet = Server.EndsWith(".dll", StringComparison.OrdinalIgnoreCase);
        var command = new List<string>();
        if (netns is not null) command.AddRange(["netns", "exec", netns]);
        if (runsUnderDotnet) command.AddRange(["dotnet", Server]);
        else command.Add(Server);
        command.AddRange(args);
        var psi = new ProcessStartInfo(netns is not null ? "ip" : command[0])
        {
            WorkingDirectory = workDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in netns is not null ? command : command.Skip(1)) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) psi.Environment[name] = value;
        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        var server = new ServerProcess(id, process) { _clock = clock };
        process.OutputDataReceived += (_, e) => server.Add(e.Data);
        process.ErrorDataReceived += (_, e) => server.Add(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return server;
    }

    private Func<long>? _clock;

    private void Add(string? line)
    {
        if (line is null) return;
        if (_clock is not null) line = $"[{_clock(),7} ms] {line}";
        lock (_gate) _lines.Add(line);
    }

    public string Output
    {
        get { lock (_gate) return string.Join('\n', _lines); }
    }

    public bool HasExited => _process.HasExited;

    /// <summary>The process id (for /proc/PID/... on Linux).</summary>
    public int Pid => _process.Id;

    public async Task<bool> WaitForOutput(string text, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            if (Output.Contains(text, StringComparison.Ordinal)) return true;
            if (_process.HasExited) { await Task.Delay(100); return Output.Contains(text, StringComparison.Ordinal); }
            await Task.Delay(20);
        }
        return false;
    }

    /// <summary>Waits for the process to exit by itself; returns its exit code (or null on timeout).</summary>
    public async Task<int?> WaitForExit(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
            _process.WaitForExit(); // flush the output readers
            return _process.ExitCode;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>kill -9.</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            _process.WaitForExit(5000);
        }
        catch (InvalidOperationException) { }
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    /// <summary>Free loopback ports (bound to port 0, then released).</summary>
    public static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ =>
        {
            var l = new TcpListener(IPAddress.Loopback, 0);
            l.Start();
            return l;
        }).ToList();
        var ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        foreach (var l in listeners) l.Stop();
        return ports;
    }

    public static string TempDir(string name)
    {
        var dir = Path.Combine(Path.GetTempPath(), "raftps-tests", $"{name}-{Guid.NewGuid():N}"[..(name.Length + 9)]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    public static string WriteConfig(string dir, IEnumerable<(int Id, int Port)> nodes, string host = "127.0.0.1")
    {
        var sb = new StringBuilder();
        foreach (var (id, port) in nodes) sb.Append($"{id} {host} {port}\n");
        var path = Path.Combine(dir, "config.conf");
        File.WriteAllText(path, sb.ToString());
        return path;
    }
}
