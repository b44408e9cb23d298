using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Grpc.Core;

namespace RaftPS.Bench;

static class Program
{
    const string Usage = """
        RaftPS.Bench: a closed-loop benchmark of RaftPS and etcd on this machine (loopback only).

        run        --target raftps|etcd --endpoints H:P,H:P,... [--label NAME] [--workloads put,get,mixed]
                   [--concurrency 1,16,64,256] [--jit-warmup 2] [--warmup 2] [--duration 10] [--connections 2] [--keys 10000]
                   [--value-bytes 256] [--connect leader|N] [--no-preload] [--pids-file F] [--round N] [--kind run|soak]
                   [--dimension NAME] [--stale] [--json FILE] [--no-header]
                   --connections N: N HTTP/2 connections to each node (one GrpcChannel each; --channels is the same option)
        preload    --target T --endpoints E [--keys 10000] [--value-bytes 256] [--concurrency 64] [--connections 2]
                   [--label NAME] [--json FILE]   (--json: a "preload" line with the keys, their live bytes and the rate)
        failover   --target T --endpoints E --pids-file F [--label NAME] [--repeat 5] [--attempt-timeout-ms 250]
                   [--before-s 1] [--settle-s 3] [--max-wait-s 20] [--log-dir DIR] [--json FILE]
        leader     --target T --endpoints E [--timeout-s 30]        prints the leader's index and term
        (run, preload, failover, leader: --tls-ca PATH for RaftPS nodes serving clients over TLS with certificates of that CA;
         --value-bytes: values of other sizes use keys of their own, bench/vSIZE/key-N)
        floor      [--dir DIR] [--samples 2000] [--bytes 320] [--json FILE]
                   this machine's floor under a put at C=1: fsync of a small append (one writer, two at once),
                   a loopback round trip (DIR: on the disk the nodes use; default a temp folder)
        rss        --pids-file F --label NAME --phase idle|load [--json FILE]
        free-ports --count N                                        prints N free loopback TCP ports
        snapshots  --server PATH [--writes 1000000] [--keys 1000] [--value-bytes 256] [--catchup-mb 100]
                   [--concurrency 256] [--restarts 3] [--server-args "..."] [--keep-dir] [--json FILE]
                   starts its own 3-node RaftPS cluster: disk after N writes, start-up time, catch-up time;
                   PATH: out/RaftPS/server/<rid>/RaftServer, or a RaftServer.dll (run by dotnet; --server-dll PATH too)
        watch-fanout --server PATH [--watchers 1000] [--rate 1000] [--warmup 3] [--duration 20] [--channels 8]
                   [--server-args "..."] [--json FILE]
                   starts its own 3-node RaftPS cluster: W watchers of one prefix on a follower while writes
                   arrive at R/s; delivery latency (write call to event) and the follower's memory and CPU
        cas        --server PATH [--concurrency 64] [--workloads put,cas,cas-contended] [--contended-keys 4]
                   [--warmup 2] [--duration 10] [--server-args "..."] [--json FILE]
                   starts its own 3-node RaftPS cluster: plain puts against compare-and-sets that hold
                   (each worker its own key) and that contend (C workers on a few keys)
        membership --server PATH [--repeat 5] [--concurrency 8] [--catchup-mb 100] [--value-bytes 4096] [--write-keys 1000]
                   [--warmup-s 1] [--settle-s 1] [--tail-ms 250] [--one-cluster] [--server-args "..."] [--keep-dir] [--json FILE]
                   starts its own 3-node RaftPS cluster (a new one per round unless --one-cluster): a new node's catch-up
                   time, the longest write gap while adding a member, removing a follower, removing the leader, moving the leadership
        report     --results FILE --out docs/benchmarks.md --svg docs/benchmarks.svg [--baseline raftps]
                   [--commands FILE] [--notes FILE]

        Durations are in seconds. --json appends one JSON line per result.
        """;

    static async Task<int> Main(string[] argv)
    {
        RaftServer.Hosting.SharedArrayPoolSize.Configure();
        CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
        try
        {
            var args = new Args(argv);
            return args.Command switch
            {
                "run" => await RunAsync(args, cts.Token),
                "preload" => await PreloadAsync(args, cts.Token),
                "failover" => await Failover.RunAsync(args, cts.Token),
                "snapshots" => await Snapshots.RunAsync(args, cts.Token),
                "watch-fanout" => await Coordination.WatchFanoutAsync(args, cts.Token),
                "cas" => await Coordination.CasAsync(args, cts.Token),
                "membership" => await MembershipBench.RunAsync(args, cts.Token),
                "leader" => await LeaderAsync(args, cts.Token),
                "floor" => Floor.Run(args),
                "rss" => Rss(args),
                "free-ports" => FreePorts(args),
                "report" => Report.Write(args),
                "help" or "--help" or "-h" => Help(),
                _ => throw new UsageException($"unknown command '{args.Command}'"),
            };
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            Console.Error.WriteLine(Usage);
            return 2;
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            Console.Error.WriteLine("cancelled");
            return 130;
        }
        catch (Exception e) when (e is RpcException or TimeoutException or InvalidOperationException or IOException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    static int Help() { Console.WriteLine(Usage); return 0; }

    internal static ITarget OpenTarget(Args a, int channels, TimeSpan? connectTimeout = null)
    {
        string kind = a.Required("target");
        var endpoints = Endpoint.ParseList(a.Required("endpoints"));
        int keys = a.Int("keys", 10_000);
        if (keys < 1) throw new UsageException("--keys must be positive");
        int valueBytes = ValueBytes(a);
        // --tls-ca PATH: the RaftPS nodes serve clients over TLS with certificates of this CA (raftps only).
        var tlsCa = a.Str("tls-ca") is { } caPath ? System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(File.ReadAllText(caPath)) : null;
        if (tlsCa is not null && kind != "raftps") throw new UsageException("--tls-ca is for --target raftps");
        return Targets.Create(kind, endpoints, channels, keys, valueBytes, connectTimeout ?? TimeSpan.FromSeconds(2), tlsCa);
    }

    /// <summary>--value-bytes: up to 16 MiB (the client's receive limit); each server's own request limit applies too.</summary>
    static int ValueBytes(Args a)
    {
        int valueBytes = a.Int("value-bytes", Keys.ValueSize);
        if (valueBytes is < 1 or > 16 << 20) throw new UsageException("--value-bytes must be between 1 and 16777216");
        return valueBytes;
    }

    /// <summary>--connections N (or its older name --channels): HTTP/2 connections per node.</summary>
    static int Connections(Args a, int fallback)
    {
        int connections = a.Int("connections", a.Int("channels", fallback));
        if (connections < 1) throw new UsageException("--connections must be positive");
        return connections;
    }

    internal static void EmitJson(string? path, Dictionary<string, object?> record)
    {
        string line = JsonSerializer.Serialize(record);
        if (path is null) Console.WriteLine(line);
        else File.AppendAllText(path, line + "\n");
    }

    static async Task<int> LeaderAsync(Args a, CancellationToken ct)
    {
        using var target = OpenTarget(a, 1);
        var timeout = TimeSpan.FromSeconds(a.Double("timeout-s", 30));
        a.CheckAllUsed();
        var view = await Targets.WaitForLeaderAsync(target, timeout, ct);
        Console.WriteLine($"{view.LeaderIndex} {view.Term}");
        return 0;
    }

    static async Task<int> PreloadAsync(Args a, CancellationToken ct)
    {
        int connections = Connections(a, 2);
        using var target = OpenTarget(a, connections);
        int keys = a.Int("keys", 10_000);
        int valueBytes = ValueBytes(a);
        int concurrency = a.Int("concurrency", 64);
        string label = a.Str("label", target.Kind)!;
        string? json = a.Str("json");
        a.CheckAllUsed();
        if (concurrency < 1) throw new UsageException("--concurrency must be positive");
        var leader = await Targets.WaitForLeaderAsync(target, TimeSpan.FromSeconds(30), ct);
        var sw = Stopwatch.StartNew();
        var outcome = await Preload.RunAsync(target, leader, keys, concurrency, ct,
            keys >= 100_000 ? n => Console.Error.WriteLine($"  {n:N0} of {keys:N0} keys ({n / sw.Elapsed.TotalSeconds:0} writes/s)") : null);
        double seconds = sw.Elapsed.TotalSeconds;
        Console.Error.WriteLine($"preloaded {keys} keys of {valueBytes} bytes into {label} in {seconds:0.0} s ({keys / seconds:0} writes/s); {outcome.Describe()}");
        if (json is not null)
            EmitJson(json, new Dictionary<string, object?>
            {
                ["kind"] = "preload", ["label"] = label, ["target"] = target.Kind, ["nodes"] = target.Endpoints.Count,
                ["keys"] = keys, ["value_bytes"] = valueBytes, ["live_bytes"] = Keys.LiveBytes(keys, valueBytes),
                ["concurrency"] = concurrency, ["connections"] = connections,
                ["seconds"] = Math.Round(seconds, 3), ["ops_per_s"] = Math.Round(keys / seconds, 1),
                ["terms_elapsed"] = outcome.TermsElapsed, ["leader_switches"] = outcome.LeaderSwitches, ["retried_writes"] = outcome.RetriedWrites,
                ["time_utc"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ"),
            });
        return 0;
    }

    static async Task<int> RunAsync(Args a, CancellationToken ct)
    {
        int connections = Connections(a, 2);
        using var target = OpenTarget(a, connections);
        int valueBytes = ValueBytes(a);
        string dimension = a.Str("dimension", "concurrency")!;
        string label = a.Str("label", target.Kind)!;
        var workloads = Array.ConvertAll(a.List("workloads", ["put", "get", "mixed"]), w => w switch
        {
            "put" => Workload.Put,
            "get" => Workload.Get,
            "mixed" => Workload.Mixed,
            _ => throw new UsageException($"unknown workload '{w}' (put, get, mixed)"),
        });
        int[] concurrency = a.IntList("concurrency", [1, 16, 64, 256]);
        var warmup = TimeSpan.FromSeconds(a.Double("warmup", 2));
        var duration = TimeSpan.FromSeconds(a.Double("duration", 10));
        var jitWarmup = TimeSpan.FromSeconds(a.Double("jit-warmup", 2));
        int keys = a.Int("keys", 10_000);
        string connect = a.Str("connect", "leader")!;
        bool noPreload = a.Flag("no-preload");
        string? pidsFile = a.Str("pids-file");
        int round = a.Int("round", 1);
        string? json = a.Str("json");
        bool noHeader = a.Flag("no-header");
        string kind = a.Str("kind", "run")!;
        ReadMode.Stale = a.Flag("stale");
        a.CheckAllUsed();

        int[] pids = pidsFile is null ? [] : ProcInfo.ReadPids(pidsFile);
        var leader = await Targets.WaitForLeaderAsync(target, TimeSpan.FromSeconds(30), ct);
        int endpoint = connect == "leader" ? leader.LeaderIndex
            : int.TryParse(connect, out int n) && n >= 0 && n < target.Endpoints.Count ? n
            : throw new UsageException("--connect is 'leader' or an endpoint index");

        if (!noPreload && Array.Exists(workloads, w => w != Workload.Put))
        {
            var sw = Stopwatch.StartNew();
            var outcome = await Preload.RunAsync(target, leader, keys, 64, ct);
            Console.Error.WriteLine($"preloaded {keys} keys in {sw.Elapsed.TotalSeconds:0.0} s; {outcome.Describe()}");
        }

        // A fresh process spends its first seconds compiling the gRPC/HTTP/2 path (tiered JIT, measured
        // at up to half the client's CPU): a short unmeasured run at some concurrency gets it through that
        // before the first cell's own warm-up, so a C=1 cell does not carry the compiler.
        if (jitWarmup > TimeSpan.Zero)
            await Driver.RunAsync(target, new RunSettings(Array.Exists(workloads, w => w != Workload.Put) ? Workload.Mixed : Workload.Put,
                16, jitWarmup, TimeSpan.FromMilliseconds(1), keys, endpoint), ct);

        if (!noHeader) Console.WriteLine(TableHeader);
        foreach (var workload in workloads)
        {
            foreach (int c in concurrency)
            {
                await target.BetweenRunsAsync(endpoint, ct);
                var before = await Targets.WaitForLeaderAsync(target, TimeSpan.FromSeconds(30), ct);
                // The servers' CPU is read at the edges of the measured window, as the client's is.
                var result = await Driver.RunAsync(target, new RunSettings(workload, c, warmup, duration, keys, endpoint,
                    pids.Length > 0 ? () => ProcInfo.CpuSeconds(pids) : null), ct);
                long?[] rss = Array.ConvertAll(pids, p => ProcInfo.RssKib(p));
                var after = await Targets.WaitForLeaderAsync(target, TimeSpan.FromSeconds(30), ct);

                // The connections this process really holds to the node it loads (one per channel in use).
                int[]? open = ProcInfo.OwnConnectionsTo(target.Endpoints.Select(e => e.Port).ToArray());
                double opsPerSec = result.Ops / result.Seconds;
                var record = new Dictionary<string, object?>
                {
                    ["kind"] = kind,
                    ["label"] = label,
                    ["target"] = target.Kind,
                    ["round"] = round,
                    ["workload"] = workload.ToString().ToLowerInvariant() + (ReadMode.Stale && workload != Workload.Put ? "-stale" : ""),
                    ["dimension"] = dimension,
                    ["nodes"] = target.Endpoints.Count,
                    ["concurrency"] = c,
                    ["connections"] = connections,
                    ["connections_open"] = open?[endpoint],
                    ["keys"] = keys,
                    ["value_bytes"] = valueBytes,
                    ["warmup_s"] = warmup.TotalSeconds,
                    ["duration_s"] = Math.Round(result.Seconds, 3),
                    ["ops"] = result.Ops,
                    ["puts"] = result.Puts,
                    ["gets"] = result.Gets,
                    ["ops_per_s"] = Math.Round(opsPerSec, 1),
                    ["errors"] = result.Errors,
                    ["missing"] = result.Missing,
                    ["first_error"] = result.FirstError,
                    ["p50_ms"] = Math.Round(result.Latency.PercentileMs(50), 3),
                    ["p90_ms"] = Math.Round(result.Latency.PercentileMs(90), 3),
                    ["p99_ms"] = Math.Round(result.Latency.PercentileMs(99), 3),
                    ["p999_ms"] = Math.Round(result.Latency.PercentileMs(99.9), 3),
                    ["max_ms"] = Math.Round(result.Latency.MaxMs, 3),
                    ["mean_ms"] = Math.Round(result.Latency.MeanMs, 3),
                    ["client_cpu_pct"] = Math.Round(result.ClientCpuPercent, 1),
                    // The client's own cost per request, beside its CPU: what its GC had to do.
                    ["client_alloc_bytes_per_op"] = result.Ops > 0 ? Math.Round((double)result.Gc.AllocatedBytes / result.Ops) : null,
                    ["client_gcs_per_100k_ops"] = result.Ops > 0 ? Math.Round(result.Gc.Collections * 1e5 / result.Ops, 1) : null,
                    ["client_gc_pause_us_per_op"] = result.Ops > 0 ? Math.Round(result.Gc.Pause.TotalMicroseconds / result.Ops, 2) : null,
                    ["client_cpu_us_per_op"] = result.Ops > 0 ? Math.Round(result.ClientCpuSeconds * 1e6 / result.Ops, 1) : null,
                    ["server_cpu_pct"] = result.ServerCpuSeconds is double serverCpu ? Math.Round(serverCpu / result.Seconds * 100, 1) : null,
                    ["server_cpu_us_per_op"] = result.ServerCpuSeconds is double cpu && result.Ops > 0 ? Math.Round(cpu * 1e6 / result.Ops, 1) : null,
                    ["rss_kib"] = pids.Length > 0 ? rss : null,
                    ["leader_before"] = before.LeaderIndex,
                    ["leader_after"] = after.LeaderIndex,
                    ["term_before"] = before.Term,
                    ["term_after"] = after.Term,
                    ["time_utc"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ"),
                };
                Console.WriteLine(TableRow(label, workload, c, opsPerSec, result, record));
                EmitJson(json, record);
                if (json is not null && result.FirstError is not null) Console.Error.WriteLine($"  first error: {result.FirstError}");
            }
        }
        return 0;
    }

    const string TableHeader =
        "label                target   workload  C     ops/s      p50 ms   p90 ms   p99 ms   max ms   errors  client CPU  server CPU  client µs/op  server µs/op  conns  leader";

    static string TableRow(string label, Workload w, int c, double opsPerSec, RunResult r, Dictionary<string, object?> rec) =>
        string.Format(CultureInfo.InvariantCulture,
            "{0,-20} {1,-8} {2,-8} {3,4} {4,10:0} {5,8:0.000} {6,8:0.000} {7,8:0.000} {8,8:0.0} {9,8} {10,10:0}% {11,10} {13,13} {14,13} {15,6} {12}",
            label, rec["target"], w.ToString().ToLowerInvariant(), c, opsPerSec,
            r.Latency.PercentileMs(50), r.Latency.PercentileMs(90), r.Latency.PercentileMs(99), r.Latency.MaxMs,
            r.Errors, r.ClientCpuPercent,
            rec["server_cpu_pct"] is double s ? s.ToString("0", CultureInfo.InvariantCulture) + "%" : "-",
            (long)rec["term_before"]! == (long)rec["term_after"]! && (int)rec["leader_before"]! == (int)rec["leader_after"]! ? "stable" : "CHANGED",
            rec["client_cpu_us_per_op"] is double cu ? cu.ToString("0.0", CultureInfo.InvariantCulture) : "-",
            rec["server_cpu_us_per_op"] is double su ? su.ToString("0.0", CultureInfo.InvariantCulture) : "-",
            rec["connections_open"] is int co ? co.ToString(CultureInfo.InvariantCulture) : "-");

    static int Rss(Args a)
    {
        var pids = ProcInfo.ReadPids(a.Required("pids-file"));
        string label = a.Required("label");
        string phase = a.Str("phase", "idle")!;
        string? json = a.Str("json");
        a.CheckAllUsed();
        for (int i = 0; i < pids.Length; i++)
        {
            var rss = ProcInfo.RssKib(pids[i]);
            Console.Error.WriteLine($"{label} node {i} (pid {pids[i]}) {phase}: VmRSS {(rss is long k ? $"{k / 1024.0:0.0} MiB" : "?")}");
            EmitJson(json, new Dictionary<string, object?>
            {
                ["kind"] = "rss", ["label"] = label, ["phase"] = phase, ["node"] = i,
                ["rss_kib"] = rss, ["peak_rss_kib"] = ProcInfo.PeakRssKib(pids[i]),
            });
        }
        return 0;
    }

    static int FreePorts(Args a)
    {
        int count = a.Int("count", 1);
        a.CheckAllUsed();
        var listeners = new List<TcpListener>();
        try
        {
            for (int i = 0; i < count; i++)
            {
                var l = new TcpListener(IPAddress.Loopback, 0);
                l.Start();
                listeners.Add(l);
                Console.WriteLine(((IPEndPoint)l.LocalEndpoint).Port);
            }
        }
        finally
        {
            foreach (var l in listeners) l.Stop();
        }
        return 0;
    }
}
