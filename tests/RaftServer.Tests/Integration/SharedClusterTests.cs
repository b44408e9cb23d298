using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using RaftPS.Protocol;

namespace RaftServer.Tests.Integration;

[Collection(ProcessCollection.Name)]
public sealed class SharedClusterTests(SharedClusterFixture fixture) : IClassFixture<SharedClusterFixture>
{
    private LocalCluster Cluster => fixture.Cluster;

    private async Task<(int Leader, int[] Followers)> Roles()
    {
        var leader = await Cluster.WaitForLeaderAsync();
        return (leader, Cluster.Ids.Where(i => i != leader).ToArray());
    }

    [Fact]
    public async Task Every_node_names_the_same_leader_and_it_logs_the_original_lines()
    {
        var (leader, _) = await Roles();
        foreach (var id in Cluster.Ids)
        {
            var reply = await Cluster.Client(id).GetLeaderAsync(new GetLeaderRequest());
            Assert.Equal(leader, reply.Leader.Id);
            Assert.Equal("127.0.0.1", reply.Leader.Address);
            Assert.Equal(Cluster.Ports[leader], reply.Leader.Port);
            Assert.True(reply.Term >= 1);
        }
        var output = Cluster.Process(leader).Output;
        Assert.Contains($"The server starts at 127.0.0.1:{Cluster.Ports[leader]}", output);
        Assert.Contains("I am a follower. Term: 0", output);
        Assert.Contains("I am a leader. Term: ", output);
        Assert.Contains("Votes received", output);
        Assert.Contains("Command from client: getleader", output);
    }

    [Fact]
    public async Task Writes_through_the_leader_and_followers_are_read_back_from_every_node()
    {
        var (leader, followers) = await Roles();
        var viaLeader = await Cluster.SetAsync(leader, "rw/leader", "100");
        var viaFollower = await Cluster.SetAsync(followers[0], "rw/follower", "200");
        Assert.True(viaLeader.Index > 0);
        Assert.True(viaFollower.Index > viaLeader.Index);
        foreach (var id in Cluster.Ids)
        {
            Assert.Equal("100", await Cluster.GetAsync(id, "rw/leader"));
            Assert.Equal("200", await Cluster.GetAsync(id, "rw/follower")); // linearizable: sees the write just acknowledged
        }
        Assert.Null(await Cluster.GetAsync(followers[1], "rw/missing"));
        Assert.Contains("Command from client: setval rw/follower 200", Cluster.Process(followers[0]).Output);

        await Cluster.WaitForAppliedAsync(followers[1], viaFollower.Index);
        Assert.Equal("200", await Cluster.GetAsync(followers[1], "rw/follower", stale: true));
    }

    [Fact]
    public async Task Delete_says_whether_the_key_existed()
    {
        var (leader, followers) = await Roles();
        await Cluster.SetAsync(leader, "del/a", "1");
        var clientId = (ulong)Random.Shared.NextInt64(1, long.MaxValue);
        var first = await LocalCluster.RetryAsync(() => Cluster.Client(followers[0]).DeleteAsync(new DeleteRequest { Key = "del/a", ClientId = clientId, Sequence = 1 }).ResponseAsync);
        var second = await LocalCluster.RetryAsync(() => Cluster.Client(leader).DeleteAsync(new DeleteRequest { Key = "del/a", ClientId = clientId, Sequence = 2 }).ResponseAsync);
        Assert.True(first.Existed);
        Assert.False(second.Existed);
        Assert.True(second.Index > first.Index);
        Assert.Null(await Cluster.GetAsync(followers[1], "del/a"));
    }

    [Fact]
    public async Task Range_returns_a_prefix_in_key_order_in_pages()
    {
        var (leader, followers) = await Roles();
        for (var i = 9; i >= 0; i--) await Cluster.SetAsync(leader, $"range/{i:D2}", $"v{i}");
        await Cluster.SetAsync(leader, "rangf", "outside");

        var keys = new List<string>();
        var startAfter = "";
        var pages = 0;
        while (true)
        {
            var page = await LocalCluster.RetryAsync(() => Cluster.Client(followers[0]).RangeAsync(new RangeRequest { Prefix = "range/", StartAfter = startAfter, Limit = 4 }).ResponseAsync);
            pages++;
            keys.AddRange(page.Items.Select(i => i.Key));
            if (!page.More) break;
            startAfter = page.Items[^1].Key;
        }
        Assert.Equal(Enumerable.Range(0, 10).Select(i => $"range/{i:D2}"), keys);
        Assert.Equal(3, pages);

        var all = await LocalCluster.RetryAsync(() => Cluster.Client(leader).RangeAsync(new RangeRequest { Prefix = "range/" }).ResponseAsync);
        Assert.Equal(10, all.Items.Count);
        Assert.False(all.More);
        Assert.Equal("v3", all.Items[3].Value.ToStringUtf8());
    }

    [Fact]
    public async Task A_retried_write_with_the_same_client_id_and_sequence_applies_once()
    {
        var (leader, followers) = await Roles();
        var clientId = (ulong)Random.Shared.NextInt64(1, long.MaxValue);
        var first = await Cluster.SetAsync(leader, "session/k", "one", clientId, 1);
        var second = await Cluster.SetAsync(followers[0], "session/k", "two", clientId, 2);
        var retry = await Cluster.SetAsync(followers[1], "session/k", "one", clientId, 1);
        Assert.Equal(first.Index, retry.Index);
        Assert.Equal("two", await Cluster.GetAsync(leader, "session/k"));
        Assert.True(second.Index > first.Index);
    }

    [Theory]
    [InlineData("")]
    [InlineData("key-too-long")]
    [InlineData("value-too-long")]
    public async Task Bad_writes_are_InvalidArgument_on_every_node(string what)
    {
        var key = what switch { "" => "", "key-too-long" => new string('k', 1025), _ => "ok" };
        var value = what == "value-too-long" ? new byte[(1 << 20) + 1] : [1];
        foreach (var id in Cluster.Ids)
        {
            var e = await Assert.ThrowsAsync<RpcException>(() =>
                Cluster.Client(id).SetAsync(new SetRequest { Key = key, Value = ByteString.CopyFrom(value) }).ResponseAsync);
            Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        }
    }

    [Fact]
    public async Task Boundary_sizes_are_accepted_and_other_bad_arguments_rejected()
    {
        var (leader, followers) = await Roles();
        var key = new string('k', 1024);
        var value = new byte[1 << 20];
        Random.Shared.NextBytes(value);
        await LocalCluster.RetryAsync(() => Cluster.Client(followers[0]).SetAsync(new SetRequest { Key = key, Value = ByteString.CopyFrom(value) }).ResponseAsync);
        var got = await LocalCluster.RetryAsync(() => Cluster.Client(followers[1]).GetAsync(new GetRequest { Key = key }).ResponseAsync);
        Assert.Equal(value, got.Value.ToByteArray());

        async Task Invalid(Func<Task> call) =>
            Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(call)).StatusCode);
        await Invalid(() => Cluster.Client(leader).GetAsync(new GetRequest { Key = "" }).ResponseAsync);
        await Invalid(() => Cluster.Client(leader).DeleteAsync(new DeleteRequest { Key = "" }).ResponseAsync);
        await Invalid(() => Cluster.Client(leader).RangeAsync(new RangeRequest { Limit = -1 }).ResponseAsync);
        await Invalid(() => Cluster.Client(leader).SuspendAsync(new SuspendRequest { Seconds = 0 }).ResponseAsync);
        await Invalid(() => Cluster.Client(leader).SuspendAsync(new SuspendRequest { Seconds = -3 }).ResponseAsync);
    }

    [Fact]
    public async Task Status_reports_the_node_and_on_the_leader_its_peers()
    {
        var (leader, followers) = await Roles();
        var write = await Cluster.SetAsync(leader, "status/k", "v");
        await Cluster.WaitForAppliedAsync(followers[0], write.Index);
        await Cluster.WaitForAppliedAsync(followers[1], write.Index);

        var s = await Cluster.StatusAsync(leader);
        Assert.Equal(leader, s.Id);
        Assert.Equal(Role.Leader, s.Role);
        Assert.Equal(leader, s.Leader.Id);
        Assert.True(s.CommitIndex >= write.Index);
        Assert.True(s.AppliedIndex >= write.Index);
        Assert.Equal(1, s.FirstIndex);
        Assert.True(s.LastIndex >= write.Index);
        Assert.True(s.LogBytes > 0);
        Assert.Equal(Cluster.Ids, s.Members.Select(m => m.Id));
        Assert.Equal(followers.Order(), s.Peers.Select(p => p.Id).Order());
        Assert.All(s.Peers, p => Assert.True(p.MatchIndex >= write.Index && p.Reachable));

        var f = await Cluster.StatusAsync(followers[0]);
        Assert.Equal(Role.Follower, f.Role);
        Assert.Empty(f.Peers);
        Assert.Equal(s.Term, f.Term);
    }

    [Fact]
    public async Task A_deadline_shorter_than_the_work_is_DeadlineExceeded()
    {
        var (leader, _) = await Roles();
        var e = await Assert.ThrowsAsync<RpcException>(() =>
            Cluster.Client(leader).SetAsync(new SetRequest { Key = "deadline", Value = ByteString.CopyFromUtf8("x") },
                deadline: DateTime.UtcNow.AddTicks(1)).ResponseAsync);
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
    }

    [Fact]
    public async Task Many_concurrent_writes_through_every_node_are_all_applied()
    {
        var (leader, _) = await Roles();
        var sw = Stopwatch.StartNew();
        var tasks = Enumerable.Range(0, 300).Select(i => Cluster.SetAsync(i % 3, $"many/{i:D3}", i.ToString())).ToArray();
        await Task.WhenAll(tasks);
        var page = await LocalCluster.RetryAsync(() => Cluster.Client(leader).RangeAsync(new RangeRequest { Prefix = "many/" }).ResponseAsync);
        Assert.Equal(300, page.Items.Count);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20));
    }
}
