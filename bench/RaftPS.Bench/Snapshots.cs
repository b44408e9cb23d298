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

        await using var cluster = new BenchCluster(server, extra.Split(' ', StringSplitOptions.RemoveEmptyEntries), keep, "snap");
        cluster.StartInitial(3);
        var leader = await cluster.WaitForLeaderAsync(ct);
        Console.Error.WriteLine($"cluster in {cluster.Dir}; leader node {leader}");

        // 1. N writes over K keys.
        var sw = Stopwatch.StartNew();
        long last = await cluster.WriteAsync(leader, writes, keys, valueBytes, concurrency, keyPrefix: "k", ct);
        double writeSeconds = sw.Elapsed.TotalSeconds;
        foreach (var id in cluster.Ids) await cluster.WaitForAppliedAsync(id, last, TimeSpan.FromMinutes(2), ct);
        long live = keys * (long)(BenchCluster.Key("k", 0).Length + valueBytes);
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
        Console.WriteLine($"start-up with {last:N0} applied writes (process start -> applied the commit index): {string.Join(", ", startups.Select(s => $"{s:0} ms"))}; median {Stats.Median(startups):0} ms " +
            $"(of which until it answers Status: median {Stats.Median(answering):0} ms)");

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

}
