using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using R = RaftPS.Protocol;

namespace RaftPS.Bench;

/// <summary>RaftServer processes on free loopback ports in a temp directory: the first ones from
/// config.conf, later ones with --join. Disposing kills every one and removes the directory (unless kept).</summary>
sealed class BenchCluster(string server, string[] extra, bool keep, string dirPrefix) : IAsyncDisposable
{
    readonly Dictionary<int, Process> _processes = new();
    readonly Dictionary<int, StreamWriter> _logs = new();
    readonly Dictionary<int, GrpcChannel> _channels = new();
    readonly Dictionary<int, int> _ports = new();

    public string Dir { get; } = Directory.CreateTempSubdirectory($"raftps-bench-{dirPrefix}-").FullName;

    /// <summary>The members config.conf lists (<see cref="StartInitial"/>).</summary>
    public int[] Ids { get; private set; } = [];

    public string DataDir(int id) => Path.Combine(Dir, "data", $"node-{id}");

    public int Pid(int id)
    {
        lock (_processes) return _processes[id].Id;
    }

    public string Address(int id)
    {
        lock (_ports) return $"http://127.0.0.1:{_ports[id]}";
    }

    public int NewPort(int id)
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        lock (_ports) return _ports[id] = ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <summary>Writes config.conf for nodes 0..size-1 and starts them.</summary>
    public void StartInitial(int size)
    {
        Ids = Enumerable.Range(0, size).ToArray();
        foreach (var id in Ids) NewPort(id);
        File.WriteAllLines(Path.Combine(Dir, "config.conf"), Ids.Select(i => $"{i} 127.0.0.1 {_ports[i]}"));
        foreach (var id in Ids) Start(id);
    }

    /// <summary>Starts (or restarts) a node of config.conf on its data directory.</summary>
    public void Start(int id) => Start(id, ["--config", "config.conf"]);

    public void StartJoining(int id, int through)
    {
        int port;
        lock (_ports) port = _ports[through];
        Start(id, ["--join", $"127.0.0.1:{port}"]);
    }

    void Start(int id, string[] how)
    {
        bool underDotnet = server.EndsWith(".dll", StringComparison.OrdinalIgnoreCase);
        var psi = new ProcessStartInfo(underDotnet ? "dotnet" : server) { WorkingDirectory = Dir, UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        if (underDotnet) psi.ArgumentList.Add(server);
        foreach (var arg in new[] { $"{id}" }.Concat(how).Concat(["--data-dir", DataDir(id), "--quiet", "--log-level", "warning"]).Concat(extra))
            psi.ArgumentList.Add(arg);
        var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start RaftServer");
        var log = new StreamWriter(Path.Combine(Dir, $"node-{id}.log"), append: true) { AutoFlush = true };
        void Line(string? s)
        {
            if (s is null) return;
            lock (log) log.WriteLine(s);
        }
        p.OutputDataReceived += (_, e) => Line(e.Data);
        p.ErrorDataReceived += (_, e) => Line(e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        lock (_processes) { _processes[id] = p; _logs[id] = log; }
    }

    /// <summary>Until <paramref name="id"/>'s port accepts a TCP connection.</summary>
    public async Task WaitForPortAsync(int id, TimeSpan timeout, CancellationToken ct)
    {
        int port;
        lock (_ports) port = _ports[id];
        var sw = Stopwatch.StartNew();
        while (true)
        {
            ThrowIfExited(id);
            try
            {
                using var tcp = new TcpClient();
                await tcp.ConnectAsync(IPAddress.Loopback, port, ct);
                return;
            }
            catch (SocketException) when (sw.Elapsed < timeout)
            {
                await Task.Delay(2, ct);
            }
        }
    }

    /// <summary>True once <paramref name="id"/>'s own configuration no longer lists it (it learned its removal).</summary>
    public async Task<bool> WaitUntilNotMemberAsync(int id, TimeSpan timeout, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            try
            {
                if ((await StatusAsync(id, ct)).Members.All(m => m.Id != id)) return true;
            }
            catch (RpcException) { }
            await Task.Delay(10, ct);
        }
        return false;
    }

    public void ThrowIfExited(int id)
    {
        lock (_processes)
            if (_processes.TryGetValue(id, out var p) && p.HasExited)
                throw new InvalidOperationException($"node {id} exited (code {p.ExitCode}); see {Path.Combine(Dir, $"node-{id}.log")}");
    }

    public void Kill(int id)
    {
        Process? p;
        StreamWriter? log;
        lock (_processes)
        {
            if (!_processes.Remove(id, out p)) return;
            _logs.Remove(id, out log);
        }
        p.Kill();
        p.WaitForExit(); // also until its output is read to the end
        p.Dispose();
        if (log is not null) lock (log) log.Dispose();
        // Its channel stays until the end: a writer may still hold a client of it.
    }

    public void DeleteData(int id)
    {
        if (Directory.Exists(DataDir(id))) Directory.Delete(DataDir(id), recursive: true);
    }

    public long DiskBytes(int id) =>
        Directory.Exists(DataDir(id)) ? new DirectoryInfo(DataDir(id)).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length) : 0;

    public R.RaftClient.RaftClientClient Client(int id)
    {
        GrpcChannel? ch;
        lock (_channels)
            if (!_channels.TryGetValue(id, out ch))
                _channels[id] = ch = GrpcChannel.ForAddress(Address(id));
        return new R.RaftClient.RaftClientClient(ch);
    }

    public async Task<R.StatusReply> StatusAsync(int id, CancellationToken ct) =>
        await Client(id).StatusAsync(new R.StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: ct);

    /// <summary>The member of config.conf that says it leads.</summary>
    public Task<int> WaitForLeaderAsync(CancellationToken ct) => WaitForLeaderAsync(Ids, ct);

    /// <summary>The voter that says it leads (Status), polled every 10 ms.</summary>
    public async Task<int> WaitForLeaderAsync(int[] voters, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(30))
        {
            foreach (var id in voters)
            {
                ThrowIfExited(id);
                try
                {
                    if ((await StatusAsync(id, ct)).Role == R.Role.Leader) return id;
                }
                catch (RpcException) { }
            }
            await Task.Delay(10, ct);
        }
        throw new TimeoutException($"no leader among {string.Join(", ", voters)} within 30 s (logs in {Dir})");
    }

    /// <summary>Polls Status until <paramref name="id"/> has applied <paramref name="index"/> (10 ms steps: the wait is what is measured).</summary>
    public async Task WaitForAppliedAsync(int id, long index, TimeSpan timeout, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            ThrowIfExited(id);
            try
            {
                if ((await Client(id).StatusAsync(new R.StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(2), cancellationToken: ct)).AppliedIndex >= index) return;
            }
            catch (RpcException) { }
            await Task.Delay(10, ct);
        }
        throw new TimeoutException($"node {id} did not apply index {index} within {timeout} (logs in {Dir})");
    }

    /// <summary>The key <see cref="WriteAsync"/> writes as its i-th of <c>keys</c>.</summary>
    public static string Key(string prefix, int i) => $"{prefix}{i:D7}";

    /// <summary>Closed loop of <paramref name="concurrency"/> writers through the leader (followers
    /// would forward) writing <paramref name="count"/> values over <paramref name="keys"/> keys;
    /// returns the highest acknowledged index. Retries Unavailable as a client would.</summary>
    public async Task<long> WriteAsync(int leader, int count, int keys, int valueBytes, int concurrency, string keyPrefix, CancellationToken ct)
    {
        var value = ByteString.CopyFrom(Enumerable.Range(0, valueBytes).Select(i => (byte)('a' + i % 26)).ToArray());
        int next = -1;
        long last = 0;
        var client = Client(leader);
        async Task Worker()
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                var request = new R.SetRequest { Key = Key(keyPrefix, i % keys), Value = value };
                for (int attempt = 0; ; attempt++)
                {
                    try
                    {
                        var r = await client.SetAsync(request, deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct);
                        long seen;
                        while ((seen = Interlocked.Read(ref last)) < r.Index && Interlocked.CompareExchange(ref last, r.Index, seen) != seen) { }
                        break;
                    }
                    catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded && attempt < 50)
                    {
                        await Task.Delay(50, ct);
                    }
                }
            }
        }
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(Worker, ct)));
        return last;
    }

    public async ValueTask DisposeAsync()
    {
        List<int> ids;
        lock (_processes) ids = [.. _processes.Keys];
        foreach (var id in ids) Kill(id);
        lock (_channels)
        {
            foreach (var ch in _channels.Values) ch.Dispose();
            _channels.Clear();
        }
        await Task.Yield();
        if (!keep) Directory.Delete(Dir, recursive: true);
    }
}
