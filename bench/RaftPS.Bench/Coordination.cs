using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using R = RaftPS.Protocol;

namespace RaftPS.Bench;

/// <summary>
/// The coordination numbers (issue 22), each on a 3-node RaftPS cluster this command starts itself:
/// <list type="bullet">
/// <item><c>watch-fanout</c>: W watchers of one prefix, all on one follower (the node whose memory is
/// reported), while writes arrive open-loop at R per second through the leader; each value carries its
/// send time, so every watcher measures the delay from the write's call to the event's arrival.</item>
/// <item><c>cas</c>: closed loops of C workers doing plain puts, compare-and-sets that always hold
/// (each worker its own key, the revision from its last reply) and compare-and-sets contended on a
/// few keys (a failure's reply names the revision to try next).</item>
/// </list>
/// </summary>
static class Coordination
{
    public static async Task<int> WatchFanoutAsync(Args a, CancellationToken ct)
    {
        string server = ServerPath(a);
        int[] watcherCounts = a.IntList("watchers", [1000]);
        int rate = a.Int("rate", 1000);
        var warmup = TimeSpan.FromSeconds(a.Double("warmup", 3));
        var duration = TimeSpan.FromSeconds(a.Double("duration", 20));
        int channels = a.Int("channels", 8);
        string extra = a.Str("server-args", "")!;
        string? json = a.Str("json");
        a.CheckAllUsed();
        if (rate < 1 || channels < 1) throw new UsageException("--rate and --channels must be positive");

        await using var cluster = new BenchCluster(server, extra.Split(' ', StringSplitOptions.RemoveEmptyEntries), keep: false, "coord");
        cluster.StartInitial(3);
        var leader = await cluster.WaitForLeaderAsync(ct);
        var host = cluster.Ids.First(i => i != leader);
        Console.Error.WriteLine($"cluster in {cluster.Dir}; leader node {leader}; watchers on node {host}");
        Console.WriteLine("watchers  writes/s  delivered/s  complete  p50 ms   p90 ms   p99 ms   max ms  host RSS MiB (idle -> load, peak)  host CPU  client CPU");
        foreach (int watchers in watcherCounts)
        {
            var record = await FanoutRunAsync(cluster, leader, host, watchers, rate, warmup, duration, channels, ct);
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "{0,8} {1,9:0} {2,12:0} {3,8:P1} {4,8:0.000} {5,8:0.000} {6,8:0.000} {7,8:0.0}  {8,6:0.0} -> {9,6:0.0}, {10,6:0.0}  {11,14:0}% {12,9:0}%",
                watchers, record["writes_per_s"], record["delivered_per_s"], record["complete"], record["p50_ms"], record["p90_ms"], record["p99_ms"], record["max_ms"],
                record["host_rss_idle_mib"], record["host_rss_load_mib"], record["host_rss_peak_mib"], record["host_cpu_pct"], record["client_cpu_pct"]));
            if (json is not null) Program.EmitJson(json, record);
        }
        return 0;
    }

    static string ServerPath(Args a)
    {
        string server = Path.GetFullPath(a.Str("server") ?? throw new UsageException("--server is required"));
        if (!File.Exists(server)) throw new UsageException($"--server: {server} does not exist (dotnet pwsh ./build.ps1 build lays out out/RaftPS/server/<rid>/RaftServer, e.g. linux-x64)");
        return server;
    }

    static async Task<Dictionary<string, object?>> FanoutRunAsync(BenchCluster cluster, int leader, int host, int watchers, int rate,
        TimeSpan warmup, TimeSpan duration, int channelCount, CancellationToken ct)
    {
        var prefix = $"fan{watchers}/";
        var idleRss = ProcInfo.RssKib(cluster.Pid(host)) ?? 0;
        var start = (await cluster.Client(leader).SetAsync(new R.SetRequest { Key = prefix + "start", Value = ByteString.Empty }, cancellationToken: ct)).Index + 1;

        // Watch streams spread over a few HTTP/2 channels, each opening another connection when the node's
        // --max-streams-per-connection (128) are in use.
        var channels = Enumerable.Range(0, channelCount).Select(_ => GrpcChannel.ForAddress(cluster.Address(host), new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true },
        })).ToArray();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        int measuring = 0;
        var histograms = new Histogram[watchers];
        var received = new long[watchers];
        var created = 0;
        var readers = new Task[watchers];
        for (int w = 0; w < watchers; w++)
        {
            int index = w;
            histograms[w] = new Histogram();
            var client = new R.RaftClient.RaftClientClient(channels[w % channelCount]);
            readers[w] = Task.Run(async () =>
            {
                using var call = client.Watch(new R.WatchRequest { Key = prefix, Prefix = true, StartRevision = start }, cancellationToken: stop.Token);
                try
                {
                    while (await call.ResponseStream.MoveNext(stop.Token))
                    {
                        var reply = call.ResponseStream.Current;
                        if (reply.Created) Interlocked.Increment(ref created);
                        if (reply.Canceled) throw new InvalidOperationException($"watcher {index} was ended: {reply.CancelReason} {reply.CancelDetail}");
                        var now = Stopwatch.GetTimestamp();
                        foreach (var e in reply.Events)
                        {
                            if (e.Value.Length < 8 || Volatile.Read(ref measuring) != 1) continue;
                            histograms[index].RecordTicks(now - BinaryPrimitives.ReadInt64LittleEndian(e.Value.Span));
                            received[index]++;
                        }
                    }
                }
                catch (RpcException) when (stop.IsCancellationRequested) { }
                catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
            });
        }
        var openedBy = Stopwatch.StartNew();
        while (Volatile.Read(ref created) < watchers)
        {
            if (openedBy.Elapsed > TimeSpan.FromSeconds(60)) throw new TimeoutException($"only {created} of {watchers} watches were created in 60 s");
            if (readers.FirstOrDefault(r => r.IsFaulted) is { } broken) await broken;
            await Task.Delay(20, ct);
        }

        // Open loop: one write every 1/rate s by the clock (not after the previous answer), to the leader.
        var writer = cluster.Client(leader);
        long sent = 0, failed = 0, measuredSent = 0;
        var pending = new List<Task>();
        var process = Process.GetCurrentProcess();
        var hostPid = cluster.Pid(host);
        double? hostCpu0 = null;
        TimeSpan clientCpu0 = default;
        long t0 = 0;
        var total = warmup + duration;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < total)
        {
            if (t0 == 0 && clock.Elapsed >= warmup)
            {
                process.Refresh();
                clientCpu0 = process.TotalProcessorTime;
                hostCpu0 = ProcInfo.CpuSeconds(hostPid);
                t0 = Stopwatch.GetTimestamp();
                Volatile.Write(ref measuring, 1);
            }
            long due = (long)(sent * (double)Stopwatch.Frequency / rate);
            if (clock.ElapsedTicks < due)
            {
                await Task.Delay(1, ct);
                continue;
            }
            var value = new byte[16];
            BinaryPrimitives.WriteInt64LittleEndian(value, Stopwatch.GetTimestamp());
            var request = new R.SetRequest { Key = $"{prefix}{sent % 100:D3}", Value = UnsafeByteOperations.UnsafeWrap(value) };
            pending.Add(writer.SetAsync(request, deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct).ResponseAsync.ContinueWith(
                t => { if (!t.IsCompletedSuccessfully) Interlocked.Increment(ref failed); }, TaskScheduler.Default));
            sent++;
            if (t0 != 0) measuredSent++;
            if (pending.Count > 4096) pending.RemoveAll(p => p.IsCompleted);
        }
        long t1 = Stopwatch.GetTimestamp();
        var loadRss = ProcInfo.RssKib(hostPid) ?? 0;
        var hostCpu1 = ProcInfo.CpuSeconds(hostPid);
        process.Refresh();
        var clientCpu1 = process.TotalProcessorTime;
        await Task.WhenAll(pending);
        // Let the last events arrive (they still count: they were sent in the window).
        await Task.Delay(TimeSpan.FromSeconds(2), ct);
        Volatile.Write(ref measuring, 0);
        stop.Cancel();
        await Task.WhenAll(readers.Select(r => r.ContinueWith(_ => { }, TaskScheduler.Default)));
        var faults = readers.Where(r => r.IsFaulted).Select(r => r.Exception!.InnerException!.Message).Distinct().ToList();
        foreach (var ch in channels) ch.Dispose();

        var latency = new Histogram();
        foreach (var h in histograms) latency.Add(h);
        double seconds = Stopwatch.GetElapsedTime(t0, t1).TotalSeconds;
        long events = received.Sum();
        var record = new Dictionary<string, object?>
        {
            ["kind"] = "watch-fanout",
            ["watchers"] = watchers,
            ["rate"] = rate,
            ["duration_s"] = Math.Round(seconds, 3),
            ["writes"] = measuredSent,
            ["write_errors"] = failed,
            ["writes_per_s"] = Math.Round(measuredSent / seconds, 1),
            ["events"] = events,
            ["delivered_per_s"] = Math.Round(events / seconds, 1),
            // Each watcher should see every write of the window (some sent just before it may arrive in it too).
            ["complete"] = measuredSent == 0 ? 0 : Math.Round((double)events / ((double)measuredSent * watchers), 4),
            ["min_per_watcher"] = received.Min(),
            ["p50_ms"] = Math.Round(latency.PercentileMs(50), 3),
            ["p90_ms"] = Math.Round(latency.PercentileMs(90), 3),
            ["p99_ms"] = Math.Round(latency.PercentileMs(99), 3),
            ["max_ms"] = Math.Round(latency.MaxMs, 3),
            ["host_rss_idle_mib"] = Math.Round(idleRss / 1024.0, 1),
            ["host_rss_load_mib"] = Math.Round(loadRss / 1024.0, 1),
            ["host_rss_peak_mib"] = Math.Round((ProcInfo.PeakRssKib(hostPid) ?? 0) / 1024.0, 1),
            ["host_cpu_pct"] = hostCpu0 is double c0 && hostCpu1 is double c1 ? Math.Round((c1 - c0) / seconds * 100, 1) : null,
            ["client_cpu_pct"] = Math.Round((clientCpu1 - clientCpu0).TotalSeconds / seconds * 100, 1),
            ["watcher_failures"] = faults.Count == 0 ? null : string.Join("; ", faults),
            ["time_utc"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ"),
        };
        if (faults.Count > 0) Console.Error.WriteLine($"watchers failed: {string.Join("; ", faults)}");
        return record;
    }

    public static async Task<int> CasAsync(Args a, CancellationToken ct)
    {
        string server = ServerPath(a);
        int[] concurrency = a.IntList("concurrency", [64]);
        var warmup = TimeSpan.FromSeconds(a.Double("warmup", 2));
        var duration = TimeSpan.FromSeconds(a.Double("duration", 10));
        int contendedKeys = a.Int("contended-keys", 4);
        string extra = a.Str("server-args", "")!;
        string? json = a.Str("json");
        string[] workloads = a.List("workloads", ["put", "cas", "cas-contended"]);
        a.CheckAllUsed();
        foreach (var w in workloads)
            if (w is not ("put" or "cas" or "cas-contended")) throw new UsageException($"unknown workload '{w}' (put, cas, cas-contended)");

        await using var cluster = new BenchCluster(server, extra.Split(' ', StringSplitOptions.RemoveEmptyEntries), keep: false, "coord");
        cluster.StartInitial(3);
        var leader = await cluster.WaitForLeaderAsync(ct);
        Console.Error.WriteLine($"cluster in {cluster.Dir}; leader node {leader}");
        using var channel = GrpcChannel.ForAddress(cluster.Address(leader));
        var client = new R.RaftClient.RaftClientClient(channel);
        var pids = cluster.Ids.Select(cluster.Pid).ToArray();
        // The servers' first seconds compile the write path (tiered JIT of a -Portable server; the
        // native one warms its caches): an unmeasured run, so the first row does not carry it.
        await CasRunAsync(client, "cas", 16, contendedKeys, warmup, TimeSpan.FromMilliseconds(1), pids, ct);
        Console.WriteLine("workload        C     ops/s  succeeded   p50 ms   p99 ms   max ms  server CPU");
        foreach (int c in concurrency)
        {
            foreach (var workload in workloads)
            {
                var record = await CasRunAsync(client, workload, c, contendedKeys, warmup, duration, pids, ct);
                Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0,-14} {1,3} {2,9:0} {3,10:P1} {4,8:0.000} {5,8:0.000} {6,8:0.0} {7,10:0}%",
                    workload, c, record["ops_per_s"], record["succeeded"], record["p50_ms"], record["p99_ms"], record["max_ms"], record["server_cpu_pct"]));
                if (json is not null) Program.EmitJson(json, record);
            }
        }
        return 0;
    }

    static async Task<Dictionary<string, object?>> CasRunAsync(R.RaftClient.RaftClientClient client, string workload, int concurrency, int contendedKeys,
        TimeSpan warmup, TimeSpan duration, int[] pids, CancellationToken ct)
    {
        var value = ByteString.CopyFrom(Keys.MakeValue());
        int phase = 0; // 0 warm-up, 1 measure, 2 stop
        var histograms = new Histogram[concurrency];
        var ops = new long[concurrency];
        var won = new long[concurrency];
        var workers = new Task[concurrency];
        for (int w = 0; w < concurrency; w++)
        {
            int index = w;
            histograms[w] = new Histogram();
            workers[w] = Task.Run(async () =>
            {
                var key = workload == "cas-contended" ? $"cas/shared-{index % contendedKeys}" : $"cas/{workload}-{index}";
                long revision = 0; // 0: the key does not exist yet
                var put = new R.SetRequest { Key = key, Value = value };
                var write = new R.WriteRequest { Op = R.WriteOp.WritePut, Key = key, Value = value, Compare = R.CompareKind.CompareModRevision };
                while (Volatile.Read(ref phase) != 2 && !ct.IsCancellationRequested)
                {
                    long startTicks = Stopwatch.GetTimestamp();
                    bool succeeded = true;
                    try
                    {
                        if (workload == "put")
                            await client.SetAsync(put, deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct);
                        else
                        {
                            write.CompareRevision = revision;
                            var reply = await client.WriteAsync(write, deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct);
                            succeeded = reply.Succeeded;
                            revision = reply.KeyRevision; // the new revision, or the one to compare next time
                        }
                    }
                    catch (RpcException) when (!ct.IsCancellationRequested)
                    {
                        await Task.Delay(10, ct);
                        continue;
                    }
                    if (Volatile.Read(ref phase) != 1) continue;
                    histograms[index].RecordTicks(Stopwatch.GetTimestamp() - startTicks);
                    ops[index]++;
                    if (succeeded) won[index]++;
                }
            }, ct);
        }
        await Task.Delay(warmup, ct);
        var cpu0 = ProcInfo.CpuSeconds(pids);
        long t0 = Stopwatch.GetTimestamp();
        Volatile.Write(ref phase, 1);
        await Task.Delay(duration, ct);
        Volatile.Write(ref phase, 2);
        long t1 = Stopwatch.GetTimestamp();
        var cpu1 = ProcInfo.CpuSeconds(pids);
        await Task.WhenAll(workers);

        double seconds = Stopwatch.GetElapsedTime(t0, t1).TotalSeconds;
        var latency = new Histogram();
        foreach (var h in histograms) latency.Add(h);
        var serverCpu = cpu1 - cpu0; // null when a server's CPU could not be read
        long total = ops.Sum();
        return new Dictionary<string, object?>
        {
            ["kind"] = "cas",
            ["workload"] = workload,
            ["concurrency"] = concurrency,
            ["contended_keys"] = workload == "cas-contended" ? contendedKeys : null,
            ["duration_s"] = Math.Round(seconds, 3),
            ["ops"] = total,
            ["ops_per_s"] = Math.Round(total / seconds, 1),
            ["succeeded"] = total == 0 ? 0 : Math.Round((double)won.Sum() / total, 4),
            ["p50_ms"] = Math.Round(latency.PercentileMs(50), 3),
            ["p99_ms"] = Math.Round(latency.PercentileMs(99), 3),
            ["max_ms"] = Math.Round(latency.MaxMs, 3),
            ["server_cpu_pct"] = serverCpu is double cpu ? Math.Round(cpu / seconds * 100, 1) : null,
            ["time_utc"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ"),
        };
    }
}
