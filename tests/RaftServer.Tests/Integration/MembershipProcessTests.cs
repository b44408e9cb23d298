using System.Diagnostics;
using Grpc.Core;
using RaftPS.Protocol;
using Xunit.Abstractions;

namespace RaftServer.Tests.Integration;

/// <summary>
/// Membership change on real processes while clients write and read: replacing a killed node,
/// growing and shrinking, removing the leader, moving the leadership. Each checks the clients'
/// history for linearizability and that acknowledged writes survive.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class MembershipProcessTests(ITestOutputHelper output)
{
    private static async Task<MembersReply> ChangeAsync(LocalCluster cluster, Func<RaftClient.RaftClientClient, Task<MembersReply>> call, IReadOnlyList<int> through)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            foreach (var node in through)
            {
                try
                {
                    return await call(cluster.Client(node));
                }
                catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded && sw.Elapsed < LocalCluster.Patience)
                {
                    await Task.Delay(50);
                }
            }
        }
    }

    private static Task<MembersReply> AddAsync(LocalCluster c, int id, bool learner, IReadOnlyList<int> through) =>
        ChangeAsync(c, client => client.AddMemberAsync(new AddMemberRequest { Id = id, Address = "127.0.0.1", Port = c.Ports[id], Learner = learner },
            deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync, through);

    private static Task<MembersReply> PromoteAsync(LocalCluster c, int id, IReadOnlyList<int> through) =>
        ChangeAsync(c, client => client.PromoteMemberAsync(new PromoteMemberRequest { Id = id }, deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync, through);

    private static Task<MembersReply> RemoveAsync(LocalCluster c, int id, IReadOnlyList<int> through) =>
        ChangeAsync(c, client => client.RemoveMemberAsync(new RemoveMemberRequest { Id = id }, deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync, through);

    /// <summary>Adds <paramref name="id"/> as a learner, starts it joining, waits until it has caught up, promotes it.</summary>
    private static async Task AddVoterAsync(LocalCluster c, int id, IReadOnlyList<int> through)
    {
        c.NewPort(id);
        await AddAsync(c, id, learner: true, through);
        c.StartJoining(id, through[0]);
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var members = await LocalCluster.RetryAsync(() => c.Client(through[0]).ListMembersAsync(new ListMembersRequest(), deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync);
            if (members.Members.FirstOrDefault(m => m.Node.Id == id) is { } m && m.CaughtUp && m.Reachable) break;
            if (sw.Elapsed > LocalCluster.Patience) throw new TimeoutException($"node {id} did not catch up\n{c.Outputs()}");
            await Task.Delay(50);
        }
        await PromoteAsync(c, id, through);
    }

    private static async Task<int[]> VotersAsync(LocalCluster c, int through)
    {
        var members = await LocalCluster.RetryAsync(() => c.Client(through).ListMembersAsync(new ListMembersRequest(), deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync);
        return members.Members.Where(m => m.Node.Role == MemberRole.Voter).Select(m => m.Node.Id).Order().ToArray();
    }

    /// <summary>Every key reads the same on <paramref name="node"/> (once it applied the leader's
    /// commit index) as on the leader: the whole key space, page by page.</summary>
    private static async Task AssertSameDataAsync(LocalCluster c, int leader, int node)
    {
        var status = await c.StatusAsync(leader);
        await c.WaitForAppliedAsync(node, status.CommitIndex);
        var onLeader = await AllAsync(c, leader);
        Assert.NotEmpty(onLeader);
        Assert.Equal(onLeader, await AllAsync(c, node));
    }

    private static async Task<List<KeyValuePair<string, string>>> AllAsync(LocalCluster c, int node)
    {
        var all = new List<KeyValuePair<string, string>>();
        var after = "";
        while (true)
        {
            var page = await c.Client(node).RangeAsync(new RangeRequest { Prefix = "", StartAfter = after, Stale = true }, deadline: DateTime.UtcNow.AddSeconds(5));
            all.AddRange(page.Items.Select(i => new KeyValuePair<string, string>(i.Key, i.Value.ToStringUtf8())));
            if (!page.More) return all;
            after = page.Items[^1].Key;
        }
    }

    [Fact]
    public async Task A_killed_node_is_replaced_by_a_new_one_while_clients_write_and_nothing_is_lost()
    {
        await using var cluster = await LocalCluster.StartAsync(3, "replace");
        await cluster.WaitForLeaderAsync();
        var members = new List<int> { 0, 1, 2 };
        await using var load = new ClusterWorkload(cluster, () => { lock (members) return [.. members]; });
        await load.WaitForWritesAsync(50);

        // The machine of a follower dies.
        var leader = await cluster.WaitForLeaderAsync();
        var dead = members.First(i => i != leader);
        lock (members) members.Remove(dead);
        cluster.Kill(dead);
        await load.WaitForWritesAsync(50);

        // A new node, new id, new port, empty data: added, caught up, promoted; then the dead one removed.
        await AddVoterAsync(cluster, 3, members);
        lock (members) members.Add(3);
        await RemoveAsync(cluster, dead, members);
        await load.WaitForWritesAsync(50);
        await load.StopAsync();

        Assert.Equal(members.Order().ToArray(), await VotersAsync(cluster, 3));
        load.AssertLinearizable();
        await AssertSameDataAsync(cluster, await cluster.WaitForLeaderAsync(members), 3);
        output.WriteLine($"{load.WritesAcknowledged} writes acknowledged, {load.WritesUnknown} unknown, {load.Reads} reads, {load.Retries} retries; longest write gap {load.LongestWriteGapMs():F0} ms");

        // The dead machine comes back with its old data directory: its peers tell it it was removed.
        var back = cluster.Start(dead);
        Assert.True(await back.WaitForOutput($"refused this node (node {dead}): its configuration removed this node from the cluster", LocalCluster.Patience), back.Output);
        Assert.Equal(members.Order().ToArray(), await VotersAsync(cluster, 3));
    }

    [Fact]
    public async Task The_cluster_grows_from_three_to_five_and_shrinks_back_under_load()
    {
        await using var cluster = await LocalCluster.StartAsync(3, "grow");
        await cluster.WaitForLeaderAsync();
        var members = new List<int> { 0, 1, 2 };
        await using var load = new ClusterWorkload(cluster, () => { lock (members) return [.. members]; });
        await load.WaitForWritesAsync(30);

        foreach (var id in new[] { 3, 4 })
        {
            await AddVoterAsync(cluster, id, members);
            lock (members) members.Add(id);
            await load.WaitForWritesAsync(20);
        }
        Assert.Equal(new[] { 0, 1, 2, 3, 4 }, await VotersAsync(cluster, 0));

        foreach (var id in new[] { 0, 1 })
        {
            lock (members) members.Remove(id);
            await RemoveAsync(cluster, id, members);
            await load.WaitForWritesAsync(20);
        }
        await load.StopAsync();

        Assert.Equal(new[] { 2, 3, 4 }, await VotersAsync(cluster, 2));
        load.AssertLinearizable();
        Assert.Equal(0, load.WritesUnknown);
        output.WriteLine($"{load.WritesAcknowledged} writes acknowledged, {load.Reads} reads, {load.Retries} retries; longest write gap {load.LongestWriteGapMs():F0} ms");
    }

    [Fact]
    public async Task Removing_the_leader_under_load_hands_over_and_loses_nothing()
    {
        await using var cluster = await LocalCluster.StartAsync(3, "remove-leader");
        var leader = await cluster.WaitForLeaderAsync();
        var members = new List<int> { 0, 1, 2 };
        await using var load = new ClusterWorkload(cluster, () => { lock (members) return [.. members]; });
        await load.WaitForWritesAsync(50);

        lock (members) members.Remove(leader);
        await RemoveAsync(cluster, leader, [leader]); // asked of the leader itself
        var next = await cluster.WaitForLeaderAsync(members);
        await load.WaitForWritesAsync(50);
        await load.StopAsync();

        Assert.NotEqual(leader, next);
        Assert.Equal(members.Order().ToArray(), await VotersAsync(cluster, next));
        Assert.True(await cluster.Process(leader).WaitForOutput("This node is not a member of the cluster", LocalCluster.Patience), cluster.Outputs());
        load.AssertLinearizable();
        Assert.Equal(0, load.WritesUnknown);
        output.WriteLine($"{load.WritesAcknowledged} writes acknowledged, {load.Reads} reads, {load.Retries} retries; longest write gap {load.LongestWriteGapMs():F0} ms");
    }

    [Fact]
    public async Task Moving_the_leadership_under_load_fails_no_write()
    {
        await using var cluster = await LocalCluster.StartAsync(3, "move-leader");
        await cluster.WaitForLeaderAsync();
        await using var load = new ClusterWorkload(cluster, () => [0, 1, 2]);
        await load.WaitForWritesAsync(50);

        for (var round = 0; round < 4; round++)
        {
            var leader = await cluster.WaitForLeaderAsync();
            var target = (leader + 1) % 3;
            var reply = await LocalCluster.RetryAsync(() => cluster.Client(leader).TransferLeadershipAsync(new TransferLeadershipRequest { Target = target },
                deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync);
            Assert.Equal(target, reply.Leader.Id);
            await load.WaitForWritesAsync(30);
        }
        await load.StopAsync();

        load.AssertLinearizable();
        Assert.Equal(0, load.WritesUnknown);
        output.WriteLine($"{load.WritesAcknowledged} writes acknowledged, {load.Reads} reads, {load.Retries} retries; longest write gap {load.LongestWriteGapMs():F0} ms");
    }

    [Fact]
    public async Task A_change_that_would_lose_quorum_is_refused_and_an_unknown_member_is_not_found()
    {
        await using var cluster = await LocalCluster.StartAsync(3, "refusals");
        var leader = await cluster.WaitForLeaderAsync();
        var others = new[] { 0, 1, 2 }.Where(i => i != leader).ToArray();
        cluster.Kill(others[0]);
        // Wait until the leader has counted the dead follower out (one to two election timeouts),
        // so the refusal below is about quorum, not a race with that.
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var members = await LocalCluster.RetryAsync(() => cluster.Client(leader).ListMembersAsync(new ListMembersRequest(), deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync);
            if (members.Members.Single(m => m.Node.Id == others[0]).Reachable == false) break;
            Assert.True(sw.Elapsed < LocalCluster.Patience, "the leader never noticed its follower died");
            await Task.Delay(50);
        }

        // Removing the live follower would leave {leader, dead}: one of two voters reachable.
        var refused = await Assert.ThrowsAsync<RpcException>(() => cluster.Client(leader).RemoveMemberAsync(
            new RemoveMemberRequest { Id = others[1] }, deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
        Assert.Equal(new[] { 0, 1, 2 }, await VotersAsync(cluster, leader));

        var notFound = await Assert.ThrowsAsync<RpcException>(() => cluster.Client(leader).RemoveMemberAsync(new RemoveMemberRequest { Id = 42 }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, notFound.StatusCode);
        var exists = await Assert.ThrowsAsync<RpcException>(() => cluster.Client(leader).AddMemberAsync(
            new AddMemberRequest { Id = leader, Address = "127.0.0.1", Port = 1, Learner = true }).ResponseAsync);
        Assert.Equal(StatusCode.AlreadyExists, exists.StatusCode);

        // Removing the dead one is fine: the leader and the live follower are a majority of what is left.
        await RemoveAsync(cluster, others[0], [leader]);
        Assert.Equal(new[] { leader, others[1] }.Order().ToArray(), await VotersAsync(cluster, leader));
    }
}
