using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using RaftServer.Cluster;
using RaftServer.Consensus;
using RaftServer.StateMachine;
using RaftServer.Storage;
using RaftServer.Transport;
using AddMemberRequest = RaftPS.Protocol.AddMemberRequest;
using P = RaftPS.Protocol;

namespace RaftServer.Tests.Integration;

/// <summary>
/// Cluster identity on real processes (docs/security.md, "Cluster identity", "Peer connections"):
/// the id a cluster commits, the id a joining node takes, a node of another cluster refused both
/// ways, forged frames on connections that are not the sender's dropped.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class ClusterIdentityProcessTests
{
    private static async Task<ulong> WaitForClusterIdAsync(string dataDir, LocalCluster cluster)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < LocalCluster.Patience)
        {
            try
            {
                var id = ClusterIdFile.Read(dataDir);
                if (id != ClusterIdentity.Unknown) return id;
            }
            catch (Exception e) when (e is IOException or InvalidDataException)
            {
                // being written
            }
            await Task.Delay(20);
        }
        throw new TimeoutException($"{dataDir} has no cluster id\n{cluster.Outputs()}");
    }

    private static int Count(ServerProcess p, string text) =>
        p.Output.Split('\n').Count(l => l.Contains(text, StringComparison.Ordinal));

    [Fact]
    public async Task A_new_cluster_commits_one_id_and_a_joining_node_takes_it()
    {
        await using var cluster = await LocalCluster.StartAsync(3, "cid-join");
        var leader = await cluster.WaitForLeaderAsync();
        var ids = new List<ulong>();
        foreach (var id in cluster.Ids) ids.Add(await WaitForClusterIdAsync(cluster.DataDir(id), cluster));
        Assert.Single(ids.Distinct());
        var clusterId = ids[0];

        cluster.NewPort(3);
        await LocalCluster.RetryAsync(() => cluster.Client(leader).AddMemberAsync(
            new AddMemberRequest { Id = 3, Address = "127.0.0.1", Port = cluster.Ports[3], Learner = true }, deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync);
        var joining = cluster.StartJoining(3, through: cluster.Ids.First(id => id != leader));
        Assert.True(await joining.WaitForOutput($"Joining cluster {ClusterIdentity.Format(clusterId)}", LocalCluster.Patience), cluster.Outputs());
        Assert.Equal(clusterId, await WaitForClusterIdAsync(cluster.DataDir(3), cluster));
        await cluster.SetAsync(leader, "after-join", "1");
    }

    [Fact]
    public async Task A_node_that_knew_no_id_and_starts_from_a_leaders_snapshot_takes_the_id_that_came_with_it()
    {
        await using var cluster = await LocalCluster.StartAsync(3, "cid-snap", "--quiet", "--snapshot-entries", "50", "--snapshot-log-bytes", "4096");
        var leader = await cluster.WaitForLeaderAsync();
        var clusterId = await WaitForClusterIdAsync(cluster.DataDir(2), cluster);
        var clock = Stopwatch.StartNew();
        for (var i = 0; (await cluster.StatusAsync(2)).SnapshotIndex == 0; i++)
        {
            if (clock.Elapsed > LocalCluster.Patience) throw new TimeoutException($"node 2 took no snapshot\n{cluster.Outputs()}");
            await cluster.SetAsync(leader, $"k{i}", $"{i}");
        }
        cluster.Kill(2);

        // What a node that knew no id leaves when it dies after a leader's snapshot became durable
        // and before the core installed it: the snapshot, the id beside it, no cluster-id file.
        var dataDir = cluster.DataDir(2);
        File.Delete(ClusterIdFile.PathIn(dataDir));
        var newest = Directory.GetFiles(Path.Combine(dataDir, "snap"), "*.snap").Max()!;
        File.WriteAllText(newest + ".cluster-id", ClusterIdentity.Format(clusterId) + "\n");

        var restarted = cluster.Start(2);
        Assert.True(await restarted.WaitForOutput($"This node belongs to cluster {ClusterIdentity.Format(clusterId)} (the snapshot it recovered from says so)",
            LocalCluster.Patience), restarted.Output);
        Assert.Equal(clusterId, ClusterIdFile.Read(dataDir));
        var after = await cluster.SetAsync(leader, "after", "1");
        await cluster.WaitForAppliedAsync(2, after.Index);
        Assert.Equal("1", await cluster.GetAsync(2, "after", stale: true));
    }

    [Fact]
    public async Task A_node_of_another_cluster_with_the_same_ids_and_addresses_is_refused_both_ways_and_the_cluster_keeps_serving()
    {
        await using var cluster = await LocalCluster.StartAsync(3, "cid-foreign");
        // Cluster A: made, given an id, stopped; its data directories kept aside.
        await cluster.WaitForLeaderAsync();
        var idA = await WaitForClusterIdAsync(cluster.DataDir(2), cluster);
        foreach (var id in cluster.Ids) cluster.Kill(id);
        var dataA = Path.Combine(cluster.Dir, "data-a");
        Directory.Move(Path.Combine(cluster.Dir, "data"), dataA);

        // Cluster B: the same config.conf (ids and addresses), new data directories.
        foreach (var id in cluster.Ids) cluster.Start(id);
        await cluster.WaitForLeaderAsync();
        var idB = await WaitForClusterIdAsync(cluster.DataDir(0), cluster);
        Assert.NotEqual(idA, idB);
        await WaitForClusterIdAsync(cluster.DataDir(1), cluster);
        cluster.Kill(2);

        // A's node 2 comes back at its old address: B's nodes 0 and 1 are where it expects its peers.
        using var stranger = ServerProcess.Start(2, cluster.Dir, "2", "--config", cluster.ConfigPath, "--data-dir", Path.Combine(dataA, "node-2"));
        var a = ClusterIdentity.Format(idA);
        var b = ClusterIdentity.Format(idB);
        Assert.True(await stranger.WaitForOutput($"it belongs to cluster {b}, this node to cluster {a}", LocalCluster.Patience), stranger.Output);
        foreach (var id in new[] { 0, 1 })
        {
            Assert.True(await cluster.Process(id).WaitForOutput($"Refused a peer connection from node 2 at 127.0.0.1:", LocalCluster.Patience), cluster.Outputs());
            Assert.True(await cluster.Process(id).WaitForOutput($"it belongs to cluster {a}, this node to cluster {b}", LocalCluster.Patience), cluster.Outputs());
        }

        // B serves on (nodes 0 and 1 are its majority) while the stranger keeps retrying.
        var leader = await cluster.WaitForLeaderAsync(among: [0, 1]);
        for (var i = 0; i < 20; i++) await cluster.SetAsync(leader, $"k{i}", $"{i}");
        await Task.Delay(TimeSpan.FromSeconds(2)); // a few hundred retries' worth for the log lines below
        Assert.Equal("19", await cluster.GetAsync(leader == 0 ? 1 : 0, "k19"));
        Assert.False(stranger.HasExited);
        Assert.Equal(idA, ClusterIdFile.Read(Path.Combine(dataA, "node-2")));

        // One line per peer and direction, not one per attempt.
        foreach (var p in new[] { cluster.Process(0), cluster.Process(1), stranger })
        {
            Assert.InRange(Count(p, "Refused a peer connection"), 1, 2);
            Assert.InRange(Count(p, "Refused the connection to node"), 1, 2);
        }
    }

    [Fact]
    public async Task A_forged_frame_on_a_connection_that_is_not_the_senders_is_dropped_and_nothing_is_committed()
    {
        await using var cluster = await LocalCluster.StartAsync(3, "cid-forged");
        var leader = await cluster.WaitForLeaderAsync();
        var clusterId = await WaitForClusterIdAsync(cluster.DataDir(leader), cluster);
        var follower = cluster.Ids.First(id => id != leader);
        await cluster.SetAsync(leader, "before", "1");
        var status = await cluster.StatusAsync(leader);
        await cluster.WaitForAppliedAsync(follower, status.LastIndex);

        // A well-formed Append in the leader's name, at the follower's last entry, committing a forged one.
        var last = status.LastIndex;
        var term = status.Term;
        var forged = new Message
        {
            Type = MessageType.Append, From = leader, To = follower, Term = term, Index = last, LogTerm = term, Commit = last + 1,
            Entries = [new Entry(last + 1, term, EntryKind.Command, Command.Encode(CommandOp.Set, 1, 777, 1, "forged", Encoding.UTF8.GetBytes("x")))],
        };
        var batch = new P.MessageBatch { From = leader, FromHost = "127.0.0.1", FromPort = cluster.Ports[leader] };
        batch.Messages.Add(MessageMapper.ToProto(forged));
        var buffer = new byte[256];
        var frame = buffer.AsSpan(0, PeerWire.Write(batch, ref buffer)).ToArray();

        var openings = new (byte[] Opening, string Expected)[]
        {
            // A socket that says it is a node the configuration does not list.
            ([.. PeerWire.Preface, .. PeerWire.Hello(clusterId, 9)], $"it says it is from node {leader}, its connection is node 9's"),
            // The peer protocol before hellos.
            ([.. PeerWire.PrefaceVersion1], "the peer protocol of an older RaftPS"),
            // The leader's id, another cluster's.
            ([.. PeerWire.Preface, .. PeerWire.Hello(clusterId ^ 1, leader)], $"Refused a peer connection from node {leader}"),
        };
        foreach (var (opening, expected) in openings)
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(IPAddress.Loopback, cluster.Ports[follower]);
            await socket.SendAsync((byte[])[.. opening, .. frame]);
            Assert.True(await cluster.Process(follower).WaitForOutput(expected, LocalCluster.Patience), cluster.Outputs());
        }

        Assert.Null(await cluster.GetAsync(follower, "forged", stale: true));
        await cluster.SetAsync(leader, "after", "2");
        Assert.Equal("2", await cluster.GetAsync(follower, "after"));
        Assert.Null(await cluster.GetAsync(follower, "forged", stale: true));
        Assert.Null(await cluster.GetAsync(leader, "forged"));
    }
}
