using Google.Protobuf;
using RaftPS.Protocol;
using Xunit.Abstractions;

namespace RaftServer.Tests.Integration;

/// <summary>Snapshots, compaction and catch-up by InstallSnapshot with real processes (issue 7).</summary>
[Collection(ProcessCollection.Name)]
public sealed class SnapshotProcessTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_follower_stopped_during_50000_writes_catches_up_by_snapshot_and_all_nodes_end_with_the_same_data()
    {
        await using var cluster = await LocalCluster.StartAsync(3, "snap-catchup", "--quiet");
        var leader = await cluster.WaitForLeaderAsync();
        var follower = cluster.Ids.First(i => i != leader);
        await cluster.SetAsync(leader, "before", "1");
        cluster.Kill(follower);

        // About 200 bytes of log per write: 10 MB in all, more than two 4 MiB segments.
        var last = await WriteManyAsync(cluster, leader, count: 50_000, keys: 5_000, valueBytes: 150);
        var s = await cluster.StatusAsync(leader);
        output.WriteLine($"leader {leader}: commit {s.CommitIndex}, snapshot {s.SnapshotIndex} (term {s.SnapshotTerm}), log {s.FirstIndex}..{s.LastIndex}, {s.LogBytes} bytes on disk");
        Assert.True(s.SnapshotIndex > 40_000, $"the leader should have snapshotted (snapshot index {s.SnapshotIndex})");
        Assert.True(s.FirstIndex > 40_000, $"the leader's log should be compacted (first index {s.FirstIndex})");
        Assert.True(s.LogBytes < 8 << 20, $"the log on disk should be compacted to at most two segments ({s.LogBytes} bytes)");
        var segments = Directory.GetFiles(Path.Combine(cluster.DataDir(leader), "wal"), "*.wal").Select(Path.GetFileName).Order().ToArray();
        Assert.DoesNotContain("0000000000000001.wal", segments); // the first segment, entirely before the snapshots, is gone

        cluster.Start(follower);
        await cluster.WaitForAppliedAsync(follower, last);
        Assert.True(await cluster.Process(follower).WaitForOutput("Installed the leader's snapshot", TimeSpan.FromSeconds(5)), cluster.Outputs());
        var fs = await cluster.StatusAsync(follower);
        Assert.True(fs.SnapshotIndex > 40_000, $"the follower's snapshot index is {fs.SnapshotIndex}");

        var reference = await DumpAsync(cluster, leader);
        Assert.Equal(5_001, reference.Count);
        Assert.Equal("1", reference["before"]);
        foreach (var id in cluster.Ids.Where(i => i != leader))
        {
            await cluster.WaitForAppliedAsync(id, last);
            Assert.Equal(reference, await DumpAsync(cluster, id));
        }
    }

    [Fact]
    public async Task A_follower_whose_data_directory_was_wiped_gets_the_snapshot_and_the_log_after_it()
    {
        var (cluster, leader, follower, last) = await ClusterWithSnapshotsAsync("snap-wiped", snapshotEntries: 500, writes: 3_000, keys: 300);
        await using var _ = cluster;
        cluster.Kill(follower);
        Directory.Delete(cluster.DataDir(follower), recursive: true);

        // No writes while it comes back: an idle leader must learn of the loss from heartbeats.
        cluster.Start(follower);
        await cluster.WaitForAppliedAsync(follower, last);
        var more = await cluster.SetAsync(leader, "after", "wipe");
        await cluster.WaitForAppliedAsync(follower, more.Index);
        Assert.True(await cluster.Process(follower).WaitForOutput("Installed the leader's snapshot", TimeSpan.FromSeconds(5)), cluster.Outputs());
        Assert.Equal(await DumpAsync(cluster, leader), await DumpAsync(cluster, follower));
    }

    [Fact]
    public async Task A_restarted_node_loads_its_snapshot_and_replays_only_the_log_after_it()
    {
        var (cluster, leader, node, last) = await ClusterWithSnapshotsAsync("snap-restart", snapshotEntries: 500, writes: 3_000, keys: 300);
        await using var _ = cluster;
        var before = await cluster.StatusAsync(node);
        Assert.True(before.SnapshotIndex >= 2_000, $"snapshot index {before.SnapshotIndex}");

        cluster.Kill(node);
        cluster.Start(node);
        Assert.True(await cluster.Process(node).WaitForOutput("Loaded the snapshot at index", LocalCluster.Patience), cluster.Outputs());
        await cluster.WaitForAppliedAsync(node, last);
        var after = await cluster.StatusAsync(node);
        Assert.True(after.SnapshotIndex >= before.SnapshotIndex);
        var replayed = ReplayedEntries(cluster.Process(node).Output);
        output.WriteLine($"node {node} replayed {replayed} entries after the snapshot at {after.SnapshotIndex}");
        Assert.True(replayed < 1_500, $"replayed {replayed} entries; only the log after the snapshot should be replayed");
        Assert.Equal(await DumpAsync(cluster, leader), await DumpAsync(cluster, node));
    }

    [Fact]
    public async Task A_corrupt_snapshot_is_detected_and_the_node_still_starts_with_the_right_data()
    {
        var (cluster, leader, node, last) = await ClusterWithSnapshotsAsync("snap-corrupt", snapshotEntries: 300, writes: 2_000, keys: 200);
        await using var _ = cluster;
        cluster.Kill(node);

        var snapDir = Path.Combine(cluster.DataDir(node), "snap");
        var newest = Directory.GetFiles(snapDir, "*.snap").Order(StringComparer.Ordinal).Last();
        var bytes = await File.ReadAllBytesAsync(newest);
        bytes[bytes.Length / 2] ^= 0x5A;
        await File.WriteAllBytesAsync(newest, bytes);
        output.WriteLine($"corrupted {newest}");

        cluster.Start(node);
        await cluster.WaitForAppliedAsync(node, last);
        Assert.Contains(Path.GetFileName(newest), cluster.Process(node).Output);
        var more = await cluster.SetAsync(leader, "after", "x");
        await cluster.WaitForAppliedAsync(node, more.Index);
        Assert.Equal(await DumpAsync(cluster, leader), await DumpAsync(cluster, node));
    }

    [Fact]
    public async Task Kill_9_at_random_moments_while_snapshotting_never_loses_an_acknowledged_write_or_stops_a_node_from_starting()
    {
        var seed = int.TryParse(Environment.GetEnvironmentVariable("RAFTPS_SEED"), out var s) ? s : Random.Shared.Next();
        output.WriteLine($"seed {seed} (replay: RAFTPS_SEED={seed})");
        var random = new Random(seed);
        await using var cluster = await LocalCluster.StartAsync(3, "snap-kill", "--quiet",
            "--snapshot-entries", "50", "--snapshot-log-bytes", "4096"); // a snapshot every ~70 writes
        await cluster.WaitForLeaderAsync();

        // Eight writers, each with its own session and keys (so the last acknowledged value of a
        // key is the one every node must end with), spread over the running nodes.
        var acknowledged = new Dictionary<string, string>();
        using var stop = new CancellationTokenSource();
        var writers = Enumerable.Range(1, 8).Select(w => Task.Run(async () =>
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                var key = $"w{w}/{i % 50}";
                var value = $"{i}";
                await SetAnywhereAsync(cluster, w + i, key, value, clientId: (ulong)w, sequence: (ulong)i + 1);
                lock (acknowledged) acknowledged[key] = value;
            }
        })).ToArray();

        for (var round = 0; round < 6; round++)
        {
            await Task.Delay(random.Next(100, 700)); // a random moment, not a wait for a condition
            var victim = cluster.Running[random.Next(cluster.Running.Count)];
            output.WriteLine($"round {round}: kill -9 node {victim}");
            cluster.Kill(victim);
            await Task.Delay(random.Next(0, 300));
            cluster.Start(victim);
            await cluster.WaitForLeaderAsync();
        }
        stop.Cancel();
        await Task.WhenAll(writers);

        var leader = await cluster.WaitForLeaderAsync();
        var final = await cluster.SetAsync(leader, "final", "1");
        foreach (var id in cluster.Ids) await cluster.WaitForAppliedAsync(id, final.Index);
        Dictionary<string, string> expected;
        lock (acknowledged) expected = new(acknowledged);
        output.WriteLine($"{expected.Count} keys acknowledged, last index {final.Index}");
        Assert.True(final.Index > 1_000, $"only {final.Index} entries were written: too few to snapshot while nodes were killed");
        foreach (var id in cluster.Ids)
        {
            var data = await DumpAsync(cluster, id);
            foreach (var (key, value) in expected)
                Assert.True(data.TryGetValue(key, out var got) && got == value, $"node {id}: {key} = {got ?? "(missing)"}, acknowledged {value}");
            var st = await cluster.StatusAsync(id);
            Assert.True(st.SnapshotIndex > 0, $"node {id} never snapshotted");
        }
    }

    /// <summary>A 3-node cluster snapshotting every <paramref name="snapshotEntries"/> entries, with
    /// <paramref name="writes"/> values written over <paramref name="keys"/> keys and applied by
    /// <c>Follower</c> (a node other than the leader); <c>Last</c> is the highest acknowledged index.</summary>
    private static async Task<(LocalCluster Cluster, int Leader, int Follower, long Last)> ClusterWithSnapshotsAsync(
        string name, int snapshotEntries, int writes, int keys)
    {
        var cluster = await LocalCluster.StartAsync(3, name, "--quiet", "--snapshot-entries", $"{snapshotEntries}");
        try
        {
            var leader = await cluster.WaitForLeaderAsync();
            var last = await WriteManyAsync(cluster, leader, count: writes, keys: keys);
            var follower = cluster.Ids.First(i => i != leader);
            await cluster.WaitForAppliedAsync(follower, last);
            return (cluster, leader, follower, last);
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>Writes <paramref name="count"/> values (their number, padded to
    /// <paramref name="valueBytes"/>) over <paramref name="keys"/> keys with 64 in flight; returns
    /// the highest log index acknowledged.</summary>
    private static async Task<long> WriteManyAsync(LocalCluster cluster, int node, int count, int keys, int valueBytes = 0)
    {
        var next = -1;
        long last = 0;
        var workers = Enumerable.Range(0, 64).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                var r = await LocalCluster.RetryAsync(() => cluster.Client(node).SetAsync(
                    new SetRequest { Key = $"k{i % keys:D5}", Value = ByteString.CopyFromUtf8($"{i}".PadRight(valueBytes, '.')) },
                    deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync);
                long seen;
                while ((seen = Interlocked.Read(ref last)) < r.Index && Interlocked.CompareExchange(ref last, r.Index, seen) != seen) { }
            }
        });
        await Task.WhenAll(workers);
        return last;
    }

    /// <summary>A client's write: on Unavailable (node killed, no leader yet) it tries the next
    /// running node with the same session and sequence, so the write applies at most once.</summary>
    private static async Task SetAnywhereAsync(LocalCluster cluster, int start, string key, string value, ulong clientId, ulong sequence)
    {
        var request = new SetRequest { Key = key, Value = ByteString.CopyFromUtf8(value), ClientId = clientId, Sequence = sequence };
        var deadline = DateTime.UtcNow + LocalCluster.Patience;
        for (var attempt = 0; ; attempt++)
        {
            var running = cluster.Running;
            var node = running[(start + attempt) % running.Count];
            try
            {
                await cluster.Client(node).SetAsync(request, deadline: DateTime.UtcNow.AddSeconds(2));
                return;
            }
            catch (Grpc.Core.RpcException e) when (e.StatusCode is Grpc.Core.StatusCode.Unavailable or Grpc.Core.StatusCode.DeadlineExceeded && DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }
        }
    }

    /// <summary>Every key and value of one node's state machine (stale reads: that node's own state).</summary>
    private static async Task<Dictionary<string, string>> DumpAsync(LocalCluster cluster, int node)
    {
        var all = new Dictionary<string, string>();
        var after = "";
        while (true)
        {
            var page = await LocalCluster.RetryAsync(() => cluster.Client(node).RangeAsync(
                new RangeRequest { StartAfter = after, Limit = 1000, Stale = true }, deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync);
            foreach (var kv in page.Items) all[kv.Key] = kv.Value.ToStringUtf8();
            if (!page.More || page.Items.Count == 0) return all;
            after = page.Items[^1].Key;
        }
    }

    private static int ReplayedEntries(string output)
    {
        var m = System.Text.RegularExpressions.Regex.Matches(output, @"replaying (\d+) log entries");
        return m.Count == 0 ? int.MaxValue : int.Parse(m[^1].Groups[1].Value);
    }
}
