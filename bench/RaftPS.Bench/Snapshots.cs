using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using R = RaftPS.Protocol;

namespace RaftPS.Bench;

/// <summary>
/// The numbers of issue 7, on a 3-node RaftPS cluster this command starts itself (loopback, temp
/// directory, default snapshot settings unless --server-args says otherwise):
/// disk used per node after N writes over K keys against the live data size; start-up time of a
/// node with all of it applied (kill -9, start, until it has applied the commit index); time for
/// a follower whose data directory was wiped to catch up to a state of ~M MB.
/// </summary>
static class Snapshots
{
    public static async Task<int> RunAsync(Args a, CancellationToken ct)
    {
        // --server: the native executable (out/RaftPS/server/<rid>/RaftServer) or a RaftServer.dll; --server-dll,
        // the older name, still works. The nodes run in the cluster's directory: a full path.
        string? named = a.Str("server"), namedDll = a.Str("server-dll");
        if (named is not null && namedDll is not null) throw new UsageException("give --server or --server-dll, not both");
        string server = Path.GetFullPath(named ?? namedDll ?? throw new UsageException("--server is required"));
        int writes = a.Int("writes", 1_000_000);
        int keys = a.Int("keys", 1_000);
        int valueBytes = a.Int("value-bytes", 256);
        int catchupMb = a.Int("catchup-mb", 100);
        int concurrency = a.Int("concurrency", 256);
        int restarts = a.Int("restarts", 3);
        string extra = a.Str("server-args", "")!;
        string? json = a.Str("json");
        bool keep = a.Flag("keep-dir");
        a.CheckAllUsed();
        if (!File.Exists(server)) throw new UsageException($"--server: {server} does not exist (dotnet pwsh ./build.ps1 build lays out out/RaftPS/server/<rid>/RaftServer)");

        await using var cluster = new BenchCluster(server, 3, extra.Split(' ', StringSplitOptions.RemoveEmptyEntries), keep);
        cluster.StartAll();
        var leader = await cluster.WaitForLeaderAsync(ct);
        Console.Error.WriteLine($"cluster in {cluster.Dir}; leader node {leader}");

        // 1. N writes over K keys.
        var sw = Stopwatch.StartNew();
        long last = await cluster.WriteAsync(leader, writes, keys, valueBytes, concurrency, keyPrefix: "k", ct);
        double writeSeconds = sw.Elapsed.TotalSeconds;
        foreach (var id in cluster.Ids) await cluster.WaitForAppliedAsync(id, last, TimeSpan.FromMinutes(2), ct);
        long live = keys * (long)($"k{0:D7}".Length + valueBytes);
        var disk = cluster.Ids.ToDictionary(id => id, cluster.DiskBytes);
        var status = await cluster.StatusAsync(leader, ct);
        Console.WriteLine($"{writes:N0} writes over {keys:N0} keys of {valueBytes} B: {writeSeconds:0.0} s ({writes / writeSeconds:N0}/s at C={concurrency}); last index {last:N0}");
        Console.WriteLine($"live data {live:N0} B; disk per node: {string.Join(", ", disk.Select(d => $"node {d.Key} {d.Value:N0} B ({(double)d.Value / live:0.0}x)"))}");
        Console.WriteLine($"leader: snapshot index {status.SnapshotIndex:N0}, log {status.FirstIndex:N0}..{status.LastIndex:N0}, {status.LogBytes:N0} B of log segments");

        // 2. Start-up time of a node holding all of it.
        var follower = cluster.Ids.First(i => i != leader);
        var startups = new List<double>();
        var answering = new List<double>();
        for (int r = 0; r < restarts; r++)
        {
            cluster.Kill(follower);
            var commit = (await cluster.StatusAsync(leader, ct)).CommitIndex;
            var t = Stopwatch.StartNew();
            cluster.Start(follower);
            // Split the time: the process (runtime start, JIT, recovery from disk) until it answers,
            // then until it has applied what the leader had committed.
            await cluster.WaitForAppliedAsync(follower, 0, TimeSpan.FromMinutes(2), ct);
            answering.Add(t.Elapsed.TotalMilliseconds);
            await cluster.WaitForAppliedAsync(follower, commit, TimeSpan.FromMinutes(2), ct);
            startups.Add(t.Elapsed.TotalMilliseconds);
        }
        Console.WriteLine($"start-up with {last:N0} applied writes (process start -> applied the commit index): {string.Join(", ", startups.Select(s => $"{s:0} ms"))}; median {Median(startups):0} ms " +
            $"(of which until it answers Status: median {Median(answering):0} ms)");

        // 3. Catch-up of a wiped follower to ~M MB of live data.
        int bigValue = 1_000;
        int bigKeys = (int)((long)catchupMb * 1_000_000 / bigValue);
        sw.Restart();
        long bigLast = await cluster.WriteAsync(leader, bigKeys, bigKeys, bigValue, concurrency: 64, keyPrefix: "big", ct);
        double fillSeconds = sw.Elapsed.TotalSeconds;
        foreach (var id in cluster.Ids) await cluster.WaitForAppliedAsync(id, bigLast, TimeSpan.FromMinutes(5), ct);
        long bigLive = live + bigKeys * (long)($"big{0:D7}".Length + bigValue);
        var before = await cluster.StatusAsync(leader, ct);
        var leaderRss = ProcInfo.RssKib(cluster.Pid(leader)) ?? 0;
        cluster.Kill(follower);
        Directory.Delete(cluster.DataDir(follower), recursive: true);
        var catchup = Stopwatch.StartNew();
        cluster.Start(follower);
        await cluster.WaitForAppliedAsync(follower, bigLast, TimeSpan.FromMinutes(10), ct);
        double catchupSeconds = catchup.Elapsed.TotalSeconds;
        var after = await cluster.StatusAsync(follower, ct);
        Console.WriteLine($"filled {bigLive / 1e6:0.0} MB of live data ({bigKeys:N0} keys of {bigValue} B) in {fillSeconds:0.0} s; leader snapshot index {before.SnapshotIndex:N0}, log {before.LogBytes:N0} B, RSS {leaderRss / 1024:N0} MiB");
        Console.WriteLine($"a wiped follower caught up to index {bigLast:N0} in {catchupSeconds:0.00} s ({bigLive / 1e6 / catchupSeconds:0.0} MB/s of live data); its snapshot index {after.SnapshotIndex:N0}");
        Console.WriteLine($"disk per node after the catch-up: {string.Join(", ", cluster.Ids.Select(id => $"node {id} {cluster.DiskBytes(id):N0} B"))}");

        Program.EmitJson(json, new Dictionary<string, object?>
        {
            ["kind"] = "snapshots", ["writes"] = writes, ["keys"] = keys, ["value_bytes"] = valueBytes, ["write_seconds"] = writeSeconds,
            ["live_bytes"] = live, ["disk_bytes"] = disk.Values.ToArray(), ["startup_ms"] = startups.ToArray(), ["answering_ms"] = answering.ToArray(),
            ["catchup_live_bytes"] = bigLive, ["catchup_seconds"] = catchupSeconds, ["leader_rss_kib"] = leaderRss,
            ["server_args"] = extra, ["load_average"] = File.ReadAllText("/proc/loadavg").Trim(),
        });
        return 0;
    }

    static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);
}

/// <summary>RaftServer processes on free loopback ports in a temp directory; disposing kills them
/// and removes the directory (unless kept).</summary>
sealed class BenchCluster : IAsyncDisposable
{
    /// <summary>A RaftServer.dll (run by dotnet) or the native executable (run directly).</summary>
    readonly string _server;
    readonly string[] _extra;
    readonly bool _keep;
    readonly Dictionary<int, Process> _processes = new();
    readonly Dictionary<int, GrpcChannel> _channels = new();
    readonly int[] _ports;

    public string Dir { get; } = Directory.CreateTempSubdirectory("raftps-bench-snap-").FullName;
    public int[] Ids { get; }

    public BenchCluster(string server, int size, string[] extra, bool keep)
    {
        _server = server;
        _extra = extra;
        _keep = keep;
        Ids = Enumerable.Range(0, size).ToArray();
        _ports = Enumerable.Range(0, size).Select(_ => FreePort()).ToArray();
        File.WriteAllLines(Path.Combine(Dir, "config.conf"), Ids.Select(i => $"{i} 127.0.0.1 {_ports[i]}"));
    }

    static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public string DataDir(int id) => Path.Combine(Dir, "data", $"node-{id}");
    public int Pid(int id) => _processes[id].Id;
    public string Address(int id) => $"http://127.0.0.1:{_ports[id]}";

    public void StartAll()
    {
        foreach (var id in Ids) Start(id);
    }

    public void Start(int id)
    {
        bool underDotnet = _server.EndsWith(".dll", StringComparison.OrdinalIgnoreCase);
        var psi = new ProcessStartInfo(underDotnet ? "dotnet" : _server) { WorkingDirectory = Dir, UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        if (underDotnet) psi.ArgumentList.Add(_server);
        foreach (var arg in new[] { $"{id}", "--config", "config.conf", "--data-dir", DataDir(id), "--quiet", "--log-level", "warning" }.Concat(_extra))
            psi.ArgumentList.Add(arg);
        var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start RaftServer");
        var log = new StreamWriter(Path.Combine(Dir, $"node-{id}.log"), append: true) { AutoFlush = true };
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _processes[id] = p;
    }

    public void Kill(int id)
    {
        if (!_processes.Remove(id, out var p)) return;
        p.Kill();
        p.WaitForExit();
        p.Dispose();
    }

    public R.RaftClient.RaftClientClient Client(int id)
    {
        if (!_channels.TryGetValue(id, out var ch))
            _channels[id] = ch = GrpcChannel.ForAddress($"http://127.0.0.1:{_ports[id]}");
        return new R.RaftClient.RaftClientClient(ch);
    }

    public async Task<R.StatusReply> StatusAsync(int id, CancellationToken ct) =>
        await Client(id).StatusAsync(new R.StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: ct);

    public async Task<int> WaitForLeaderAsync(CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (_processes.FirstOrDefault(p => p.Value.HasExited) is { Value: not null } dead)
                throw new InvalidOperationException($"node {dead.Key} exited (code {dead.Value.ExitCode}); see {Path.Combine(Dir, $"node-{dead.Key}.log")}");
            try
            {
                var r = await Client(Ids[0]).GetLeaderAsync(new R.GetLeaderRequest(), deadline: DateTime.UtcNow.AddSeconds(2), cancellationToken: ct);
                if (r.Leader is not null) return r.Leader.Id;
            }
            catch (RpcException) { }
            await Task.Delay(20, ct);
        }
        throw new TimeoutException("no leader within 30 s");
    }

    /// <summary>Polls Status until <paramref name="id"/> has applied <paramref name="index"/> (10 ms steps: the wait is what is measured).</summary>
    public async Task WaitForAppliedAsync(int id, long index, TimeSpan timeout, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            try
            {
                if ((await Client(id).StatusAsync(new R.StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(2), cancellationToken: ct)).AppliedIndex >= index) return;
            }
            catch (RpcException) { }
            await Task.Delay(10, ct);
        }
        throw new TimeoutException($"node {id} did not apply index {index} within {timeout} (logs in {Dir})");
    }

    /// <summary>Closed loop of <paramref name="concurrency"/> writers through the leader (followers
    /// would forward); returns the highest acknowledged index. Retries Unavailable as a client would.</summary>
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
                var request = new R.SetRequest { Key = $"{keyPrefix}{i % keys:D7}", Value = value };
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

    public long DiskBytes(int id) =>
        Directory.Exists(DataDir(id)) ? new DirectoryInfo(DataDir(id)).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length) : 0;

    public async ValueTask DisposeAsync()
    {
        foreach (var id in _processes.Keys.ToList()) Kill(id);
        foreach (var ch in _channels.Values) ch.Dispose();
        await Task.Yield();
        if (!_keep) Directory.Delete(Dir, recursive: true);
    }
}
