using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using RaftPS.Protocol;
using Xunit.Abstractions;

namespace RaftServer.Tests.Integration;

/// <summary>Kills, restarts and suspends nodes: each test has its own cluster.</summary>
[Collection(ProcessCollection.Name)]
public sealed class FaultTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Leader_killed_a_new_leader_takes_over_without_losing_acknowledged_writes_and_the_old_one_catches_up()
    {
        await using var cluster = await LocalCluster.StartAsync(3, "failover");
        var leader = await cluster.WaitForLeaderAsync();
        var acked = new List<string>();
        for (var i = 0; i < 20; i++)
        {
            await cluster.SetAsync((leader + i) % 3, $"k{i}", $"v{i}");
            acked.Add($"k{i}");
        }

        var sw = Stopwatch.StartNew();
        cluster.Kill(leader);
        var survivors = cluster.Running.ToArray();
        var next = await cluster.WaitForLeaderAsync(survivors, not: leader);
        output.WriteLine($"fail-over: node {next} leads {sw.ElapsedMilliseconds} ms after node {leader} was killed");

        foreach (var (key, i) in acked.Select((k, i) => (k, i)))
            Assert.Equal($"v{i}", await cluster.GetAsync(survivors[i % 2], key));
        SetReply last = null!;
        for (var i = 20; i < 30; i++) last = await cluster.SetAsync(survivors[i % 2], $"k{i}", $"v{i}");

        // The old leader comes back from its data directory as a follower and catches up.
        cluster.Start(leader);
        await cluster.WaitForAppliedAsync(leader, last.Index);
        for (var i = 0; i < 30; i += 7)
            Assert.Equal($"v{i}", await cluster.GetAsync(leader, $"k{i}", stale: true));
        await cluster.WaitForLeaderAsync(); // all three agree again
    }

    [Fact]
    public async Task A_killed_follower_restarted_catches_up()
    {
        await using var cluster = await LocalCluster.StartAsync(3, "follower");
        var leader = await cluster.WaitForLeaderAsync();
        var follower = cluster.Ids.First(i => i != leader);
        await cluster.SetAsync(leader, "before", "1");
        cluster.Kill(follower);
        SetReply last = null!;
        for (var i = 0; i < 15; i++) last = await cluster.SetAsync(leader, $"while/{i}", $"{i}");
        var s = await cluster.StatusAsync(leader);
        Assert.Contains(s.Peers, p => p.Id == follower && !p.Reachable || p.Id == follower && p.MatchIndex < last.Index);

        cluster.Start(follower);
        await cluster.WaitForAppliedAsync(follower, last.Index);
        Assert.Equal("1", await cluster.GetAsync(follower, "before", stale: true));
        Assert.Equal("14", await cluster.GetAsync(follower, "while/14", stale: true));
        Assert.Equal("14", await cluster.GetAsync(follower, "while/14"));
    }

    [Fact]
    public async Task A_suspended_leader_is_replaced_refuses_calls_while_asleep_and_rejoins_as_a_follower()
    {
        await using var cluster = await LocalCluster.StartAsync(3, "suspend-leader", "--allow-suspend");
        var leader = await cluster.WaitForLeaderAsync();
        await cluster.SetAsync(leader, "a", "1");

        await cluster.Client(leader).SuspendAsync(new SuspendRequest { Seconds = 3 });
        var e = await Assert.ThrowsAsync<RpcException>(() => cluster.Client(leader).GetLeaderAsync(new GetLeaderRequest()).ResponseAsync);
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Contains("suspended", e.Status.Detail);
        var others = cluster.Ids.Where(i => i != leader).ToArray();
        var next = await cluster.WaitForLeaderAsync(others, not: leader);
        var write = await cluster.SetAsync(next, "b", "2");

        Assert.True(await cluster.Process(leader).WaitForOutput("I am a follower. Term: ", LocalCluster.Patience));
        await cluster.WaitForAppliedAsync(leader, write.Index);
        Assert.Equal("2", await cluster.GetAsync(leader, "b", stale: true));
        var output = cluster.Process(leader).Output;
        Assert.Contains("Command from client: suspend 3", output);
        Assert.Contains("Sleeping for 3 seconds", output);
        await cluster.WaitForLeaderAsync(); // it follows whoever leads now
    }

    [Fact]
    public async Task A_suspended_follower_refuses_calls_the_cluster_goes_on_and_it_catches_up()
    {
        await using var cluster = await LocalCluster.StartAsync(3, "suspend-follower", "--allow-suspend");
        var leader = await cluster.WaitForLeaderAsync();
        var follower = cluster.Ids.First(i => i != leader);
        await cluster.Client(follower).SuspendAsync(new SuspendRequest { Seconds = 2 });

        var e = await Assert.ThrowsAsync<RpcException>(() =>
            cluster.Client(follower).SetAsync(new SetRequest { Key = "x", Value = ByteString.CopyFromUtf8("y") }).ResponseAsync);
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        SetReply last = null!;
        for (var i = 0; i < 10; i++) last = await cluster.SetAsync(leader, $"s/{i}", $"{i}");
        Assert.Contains("Sleeping for 2 seconds", cluster.Process(follower).Output);

        await cluster.WaitForAppliedAsync(follower, last.Index);
        Assert.Equal("9", await cluster.GetAsync(follower, "s/9"));
    }

    [Fact]
    public async Task Every_node_killed_and_restarted_keeps_every_acknowledged_write()
    {
        await using var cluster = await LocalCluster.StartAsync(3, "crash-all");
        var leader = await cluster.WaitForLeaderAsync();
        var acked = new System.Collections.Concurrent.ConcurrentBag<int>();
        using var stop = new CancellationTokenSource();
        // Writers keep going while the cluster is killed: whatever was acknowledged must survive.
        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            for (var i = w; !stop.IsCancellationRequested; i += 4)
            {
                try
                {
                    await cluster.Client(i % 3).SetAsync(new SetRequest { Key = $"c/{i}", Value = ByteString.CopyFromUtf8($"{i}") },
                        deadline: DateTime.UtcNow.AddSeconds(2));
                    acked.Add(i);
                }
                catch (RpcException)
                {
                    await Task.Delay(20); // not acknowledged: no promise to keep
                }
            }
        })).ToArray();
        var waited = Stopwatch.StartNew();
        while (acked.Count < 100 && waited.Elapsed < LocalCluster.Patience) await Task.Delay(10);
        Assert.True(acked.Count >= 50, $"only {acked.Count} writes acknowledged in {waited.Elapsed}\n{cluster.Outputs()}");
        foreach (var id in cluster.Ids) cluster.Kill(id);
        stop.Cancel();
        await Task.WhenAll(writers);

        foreach (var id in cluster.Ids) cluster.Start(id);
        var newLeader = await cluster.WaitForLeaderAsync();
        var page = await LocalCluster.RetryAsync(() => cluster.Client(newLeader).RangeAsync(new RangeRequest { Prefix = "c/", Limit = 10000 }).ResponseAsync);
        var present = page.Items.Select(i => int.Parse(i.Key[2..])).ToHashSet();
        var lost = acked.Where(i => !present.Contains(i)).ToList();
        Assert.True(lost.Count == 0, $"acknowledged writes lost: {string.Join(",", lost)}");
        output.WriteLine($"{acked.Count} acknowledged, {present.Count} present after restart");
    }
}
