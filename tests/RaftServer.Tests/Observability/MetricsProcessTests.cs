using System.Diagnostics;
using RaftPS.Protocol;
using RaftServer.Tests.Integration;
using Xunit.Abstractions;

namespace RaftServer.Tests.Observability;

/// <summary>/metrics of a real 3-node cluster under a client workload (issue 23).</summary>
[Collection(ProcessCollection.Name)]
public sealed class MetricsProcessTests(ITestOutputHelper output)
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };

    [Fact]
    public async Task Every_node_exports_every_listed_metric_with_sane_values_under_load()
    {
        var metricsPorts = ServerProcess.FreePorts(3);
        // Small snapshots, so saves happen, and a follower suspended past one gets it sent.
        await using var cluster = new LocalCluster(3, "metrics", "--quiet", "--snapshot-entries", "200", "--allow-suspend")
        {
            NodeArgs = id => ["--metrics-address", $"127.0.0.1:{metricsPorts[id]}"],
        };
        foreach (var id in cluster.Ids) cluster.Start(id);
        var leader = await cluster.WaitForLeaderAsync();
        var follower = cluster.Ids.First(i => i != leader);
        await using var load = new ClusterWorkload(cluster, () => cluster.Ids, clients: 4, keys: 50);
        await load.WaitForWritesAsync(300);

        // A follower that misses more than a snapshot's worth of log while suspended is sent one
        // once it resumes (if the load was too slow for that, it is suspended again). The scrapes
        // below start only once it has resumed and caught up.
        var sendsBefore = Count(await ScrapeAsync(metricsPorts[leader]), "raftps_snapshot_send_duration_seconds");
        for (var attempt = 1; ; attempt++)
        {
            await cluster.Client(follower).SuspendAsync(new SuspendRequest { Seconds = 2 });
            await load.WaitForWritesAsync(500);
            await cluster.WaitForAppliedAsync(follower, (await cluster.StatusAsync(leader)).CommitIndex);
            if (Count(await ScrapeAsync(metricsPorts[leader]), "raftps_snapshot_send_duration_seconds") > sendsBefore) break;
            Assert.True(attempt < 3, $"the leader sent no snapshot to node {follower} after {attempt} suspensions\n{cluster.Outputs()}");
        }

        var first = new Dictionary<int, Dictionary<string, PrometheusFamily>>();
        foreach (var id in cluster.Ids) first[id] = await ScrapeAsync(metricsPorts[id]);
        await load.WaitForWritesAsync(200);
        await Task.Delay(300); // the gauges of one collection share a loop fetch for 25 ms: scrapes that close would see the same values
        var second = new Dictionary<int, Dictionary<string, PrometheusFamily>>();
        foreach (var id in cluster.Ids) second[id] = await ScrapeAsync(metricsPorts[id]);
        await load.StopAsync();

        // Exactly one leader, the one the cluster agrees on; one term.
        Assert.Equal([leader], cluster.Ids.Where(id => Value(second[id], "raftps_is_leader") == 1));
        Assert.All(cluster.Ids, id => Assert.Contains(Value(second[id], "raftps_is_leader"), new[] { 0.0, 1.0 }));
        var term = Value(second[leader], "raftps_term");
        Assert.True(term >= 1);
        Assert.All(cluster.Ids, id => Assert.Equal(term, Value(second[id], "raftps_term")));

        foreach (var id in cluster.Ids)
        {
            var (a, b) = (first[id], second[id]);
            var what = $"node {id}";
            Assert.True(Value(b, "raftps_leader_changes_seen_total") >= 1, what);
            Assert.Equal(0, Value(b, "raftps_suspended"));
            Assert.True(Value(b, "raftps_proposals_committed_total") > Value(a, "raftps_proposals_committed_total"), $"{what}: committed rising");
            Assert.True(Value(b, "raftps_proposals_applied_total") > Value(a, "raftps_proposals_applied_total"), $"{what}: applied rising");
            Assert.True(Value(b, "raftps_proposals_pending") >= 0, what);
            Assert.True(Value(b, "raftps_proposals_failed_total") >= 0, what);
            var commit = Value(b, "raftps_commit_index");
            var applied = Value(b, "raftps_applied_index");
            Assert.True(commit > 900 && applied > 900 && applied <= commit, $"{what}: commit {commit}, applied {applied}");
            Assert.True(Value(b, "raftps_last_index") >= commit, what);
            Assert.True(Count(b, "raftps_wal_fsync_duration_seconds") > 0, $"{what}: fsync histogram empty");
            Assert.True(Count(b, "raftps_wal_fsync_duration_seconds") > Count(a, "raftps_wal_fsync_duration_seconds"), $"{what}: fsyncs rising");
            Assert.InRange(Sum(b, "raftps_wal_fsync_duration_seconds") / Count(b, "raftps_wal_fsync_duration_seconds"), 1e-7, 1.0);
            Assert.True(Value(b, "raftps_wal_written_bytes_total") > 900 * 40, $"{what}: WAL bytes");
            Assert.True(Count(b, "raftps_snapshot_save_duration_seconds") > 0, $"{what}: no snapshot saved");
            Assert.InRange(Value(b, "raftps_keys"), 1, 50);
            Assert.True(Value(b, "raftps_live_data_bytes") > 0, what);
            Assert.True(Value(b, "dotnet_process_memory_working_set_bytes") > 1 << 20, what);
            Assert.True(b["dotnet_gc_collections_total"].Samples.Sum(s => s.Value) >= 0, what);
            Assert.Contains(b["dotnet_gc_collections_total"].Samples, s => s.Label("gc_heap_generation") == "gen0");
            Assert.Equal("counter", b["raftps_client_requests_total"].Type);
            Assert.Equal("histogram", b["raftps_wal_fsync_duration_seconds"].Type);
        }

        // The leader's view of its peers: a round trip and a lag for each.
        var l = second[leader];
        var peers = cluster.Ids.Where(i => i != leader).Select(i => i.ToString()).Order().ToArray();
        Assert.Equal(peers, l["raftps_peer_round_trip_time_seconds"].Samples.Where(s => s.Name.EndsWith("_count")).Select(s => s.Label("peer")).Order());
        Assert.All(l["raftps_peer_round_trip_time_seconds"].Samples.Where(s => s.Name.EndsWith("_count")), s => Assert.True(s.Value > 0));
        Assert.InRange(Sum(l, "raftps_peer_round_trip_time_seconds") / Count(l, "raftps_peer_round_trip_time_seconds"), 1e-6, 1.0);
        Assert.Equal(peers, l["raftps_peer_lag_entries"].Samples.Select(s => s.Label("peer")).Order());
        Assert.All(l["raftps_peer_lag_entries"].Samples, s => Assert.InRange(s.Value, 0, 10_000));
        Assert.True(Count(l, "raftps_snapshot_send_duration_seconds") > 0);
        // Followers report no peers.
        Assert.All(cluster.Ids.Where(i => i != leader), id => Assert.False(second[id].ContainsKey("raftps_peer_lag_entries")
            && second[id]["raftps_peer_lag_entries"].Samples.Count > 0));

        // Requests by method and code, summed over the nodes; read-index rounds for the linearizable reads.
        var requests = cluster.Ids.SelectMany(id => second[id]["raftps_client_requests_total"].Samples).ToList();
        Assert.True(requests.Where(s => s.Label("method") == "Set" && s.Label("code") == "OK").Sum(s => s.Value) >= 1100);
        Assert.True(requests.Where(s => s.Label("method") == "Get" && s.Label("code") == "OK").Sum(s => s.Value) > 0);
        Assert.All(requests, s => Assert.Matches("^[A-Z][A-Za-z]+$", s.Label("code")));
        Assert.True(cluster.Ids.Sum(id => Value(second[id], "raftps_read_index_rounds_total")) > 0);
        output.WriteLine($"leader {leader}: {Count(l, "raftps_wal_fsync_duration_seconds")} fsyncs, mean {Sum(l, "raftps_wal_fsync_duration_seconds") / Count(l, "raftps_wal_fsync_duration_seconds") * 1e3:F3} ms");
    }

    [Fact]
    public async Task The_metrics_port_in_use_stops_the_node_with_one_clear_line()
    {
        using var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        var port = ((System.Net.IPEndPoint)taken.LocalEndpoint).Port;
        await using var cluster = new LocalCluster(1, "metrics-port") { NodeArgs = _ => ["--metrics-address", $"127.0.0.1:{port}"] };
        var p = cluster.Start(0);
        Assert.Equal(1, await p.WaitForExit(LocalCluster.Patience));
        Assert.Contains($"cannot listen for metrics on 127.0.0.1:{port}: the port is already in use", p.Output);
    }

    internal static async Task<Dictionary<string, PrometheusFamily>> ScrapeAsync(int port)
    {
        using var response = await Http.GetAsync($"http://127.0.0.1:{port}/metrics");
        response.EnsureSuccessStatusCode();
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType ?? "");
        return PrometheusText.Parse(await response.Content.ReadAsStringAsync());
    }

    private static double Value(Dictionary<string, PrometheusFamily> f, string name) =>
        f.TryGetValue(name, out var family) ? family.Samples.Single().Value : throw new Xunit.Sdk.XunitException($"no metric {name}");

    private static double Count(Dictionary<string, PrometheusFamily> f, string histogram) =>
        f.TryGetValue(histogram, out var family) ? family.Samples.Where(s => s.Name == histogram + "_count").Sum(s => s.Value) : 0;

    private static double Sum(Dictionary<string, PrometheusFamily> f, string histogram) =>
        f[histogram].Samples.Where(s => s.Name == histogram + "_sum").Sum(s => s.Value);
}
