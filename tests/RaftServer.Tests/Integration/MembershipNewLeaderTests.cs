using System.Diagnostics;
using RaftPS.Protocol;

namespace RaftServer.Tests.Integration;

/// <summary>
/// A node whose newest configuration does not list the current leader: one that installed a
/// snapshot taken before the leader joined, or one that was down while the leader was added.
/// The leader's messages must still reach it, or it never catches up.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class MembershipNewLeaderTests
{
    // Both fail today: a node drops every peer batch from a sender its configuration does not list
    // (Transport/PeerInbox), and has a link only to the members it lists (PeerTransport), so it can
    // neither hear nor answer a leader that joined after its newest configuration.
    private const string Bug = "membership bug found by the membership bench (issue 20): a node cannot hear or answer a leader " +
        "its newest configuration does not list; remove this Skip with the fix";

    private static async Task<MembersReply> AddVoterAsync(LocalCluster c, int id, int leader)
    {
        c.NewPort(id);
        var added = await LocalCluster.RetryAsync(() => c.Client(leader).AddMemberAsync(
            new AddMemberRequest { Id = id, Address = "127.0.0.1", Port = c.Ports[id], Learner = true }, deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync);
        c.StartJoining(id, leader);
        Assert.True(await CaughtUpAsync(c, id, leader, TimeSpan.FromSeconds(30)), $"node {id} did not catch up through node {leader}\n{c.Outputs()}");
        await LocalCluster.RetryAsync(() => c.Client(leader).PromoteMemberAsync(new PromoteMemberRequest { Id = id }, deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync);
        return added;
    }

    private static async Task<bool> CaughtUpAsync(LocalCluster c, int id, int leader, TimeSpan within)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < within)
        {
            var members = await LocalCluster.RetryAsync(() => c.Client(leader).ListMembersAsync(new ListMembersRequest(), deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync);
            if (members.Members.FirstOrDefault(m => m.Node.Id == id) is { CaughtUp: true, Reachable: true }) return true;
            await Task.Delay(50);
        }
        return false;
    }

    private static async Task<int> MoveLeaderAsync(LocalCluster c, int from, int to)
    {
        var reply = await LocalCluster.RetryAsync(() => c.Client(from).TransferLeadershipAsync(new TransferLeadershipRequest { Target = to },
            deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync);
        Assert.Equal(to, reply.Leader.Id);
        return to;
    }

    [Fact(Skip = Bug)]
    public async Task A_node_joining_by_a_snapshot_taken_before_the_leader_joined_catches_up()
    {
        // Every write of 5,000 bytes passes --snapshot-log-bytes: after each, the leader snapshots
        // (waited for, so none is under way at the next), and the log after its snapshot stays empty.
        await using var cluster = await LocalCluster.StartAsync(3, "join-old-snapshot", "--snapshot-log-bytes", "4096");
        var leader = await cluster.WaitForLeaderAsync();
        for (var i = 0; i < 5; i++)
        {
            var written = await cluster.SetAsync(leader, $"k{i}", new string('x', 5000));
            var sw = Stopwatch.StartNew();
            while ((await cluster.StatusAsync(leader)).SnapshotIndex < written.Index)
            {
                Assert.True(sw.Elapsed < LocalCluster.Patience, $"the leader took no snapshot of index {written.Index}\n{cluster.Outputs()}");
                await Task.Delay(20);
            }
        }

        // Node 3 joins by the leader's snapshot (members 0, 1, 2), is promoted and takes the leadership.
        var added = await AddVoterAsync(cluster, 3, leader);
        var node3 = await cluster.StatusAsync(3);
        Assert.True(node3.SnapshotIndex > 0 && node3.SnapshotIndex < added.Index,
            $"node 3 should hold a snapshot from before its own addition (snapshot {node3.SnapshotIndex}, added at {added.Index})");
        leader = await MoveLeaderAsync(cluster, leader, 3);

        // Node 4 joins through node 3: it installs node 3's snapshot, whose configuration is 0, 1, 2.
        cluster.NewPort(4);
        await LocalCluster.RetryAsync(() => cluster.Client(leader).AddMemberAsync(
            new AddMemberRequest { Id = 4, Address = "127.0.0.1", Port = cluster.Ports[4], Learner = true }, deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync);
        cluster.StartJoining(4, leader);
        Assert.True(await CaughtUpAsync(cluster, 4, leader, TimeSpan.FromSeconds(10)), $"node 4 never caught up with leader {leader}\n{cluster.Outputs()}");
    }

    [Fact(Skip = Bug)]
    public async Task A_follower_that_was_down_while_the_leader_was_added_catches_up_when_it_returns()
    {
        await using var cluster = await LocalCluster.StartAsync(3, "restart-new-leader");
        var leader = await cluster.WaitForLeaderAsync();
        await cluster.SetAsync(leader, "before", "1");
        var down = new[] { 0, 1, 2 }.First(i => i != leader);
        cluster.Kill(down);

        // While it is down, node 3 joins, is promoted and takes the leadership.
        await AddVoterAsync(cluster, 3, leader);
        leader = await MoveLeaderAsync(cluster, leader, 3);
        var written = await cluster.SetAsync(leader, "after", "2");

        cluster.Start(down); // its log's newest configuration is 0, 1, 2
        var sw = Stopwatch.StartNew();
        while ((await cluster.StatusAsync(down)).AppliedIndex < written.Index)
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"node {down} never caught up with leader {leader}\n{cluster.Outputs()}");
            await Task.Delay(50);
        }
    }
}
