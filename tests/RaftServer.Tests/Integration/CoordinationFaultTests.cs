using Google.Protobuf;
using Grpc.Core;
using RaftPS.Protocol;

namespace RaftServer.Tests.Integration;

/// <summary>Watch streams when a node's window is small, and when a node is suspended: each test has its own cluster.</summary>
[Collection(ProcessCollection.Name)]
public sealed class CoordinationFaultTests
{
    private static async Task<WatchReply> FirstReply(AsyncServerStreamingCall<WatchReply> call, CancellationToken token)
    {
        Assert.True(await call.ResponseStream.MoveNext(token), "the stream ended without a reply");
        return call.ResponseStream.Current;
    }

    [Fact]
    public async Task A_watch_from_before_a_nodes_window_is_answered_compacted_with_the_oldest_revision_kept()
    {
        await using var cluster = await LocalCluster.StartAsync(3, "watch-window", "--watch-window", "16", "--quiet");
        var leader = await cluster.WaitForLeaderAsync();
        SetReply last = null!;
        for (var i = 0; i < 40; i++) last = await cluster.SetAsync(leader, $"w/{i}", $"{i}");
        await cluster.WaitForAppliedAsync(leader, last.Index);

        using var timeout = new CancellationTokenSource(LocalCluster.Patience);
        using var old = cluster.Client(leader).Watch(new WatchRequest { Key = "w/", Prefix = true, StartRevision = 2 }, cancellationToken: timeout.Token);
        var reply = await FirstReply(old, timeout.Token);
        Assert.True(reply.Canceled);
        Assert.Equal(WatchCancelReason.WatchCompacted, reply.CancelReason);
        Assert.True(reply.CompactRevision >= 2 && reply.CompactRevision < last.Index, $"compact revision {reply.CompactRevision}");
        Assert.Contains("window", reply.CancelDetail);

        // From the oldest revision kept, it streams.
        using var kept = cluster.Client(leader).Watch(new WatchRequest { Key = "w/", Prefix = true, StartRevision = reply.CompactRevision + 1 }, cancellationToken: timeout.Token);
        Assert.True((await FirstReply(kept, timeout.Token)).Created);
        var next = await FirstReply(kept, timeout.Token);
        Assert.NotEmpty(next.Events);
        Assert.Equal(reply.CompactRevision + 1, next.Events[0].ModRevision);
    }

    [Fact]
    public async Task A_suspended_node_ends_its_watches_so_that_clients_resume_elsewhere()
    {
        await using var cluster = await LocalCluster.StartAsync(3, "watch-suspend", "--quiet", "--allow-suspend");
        var leader = await cluster.WaitForLeaderAsync();
        var follower = cluster.Ids.First(i => i != leader);
        var start = (await cluster.SetAsync(leader, "s/0", "0")).Index;

        using var timeout = new CancellationTokenSource(LocalCluster.Patience);
        using var call = cluster.Client(follower).Watch(new WatchRequest { Key = "s/", Prefix = true, StartRevision = start }, cancellationToken: timeout.Token);
        Assert.True((await FirstReply(call, timeout.Token)).Created);
        Assert.Equal("s/0", (await FirstReply(call, timeout.Token)).Events[0].Key);

        await cluster.Client(follower).SuspendAsync(new SuspendRequest { Seconds = 2 });
        var ended = await FirstReply(call, timeout.Token);
        Assert.True(ended.Canceled);
        Assert.Equal(WatchCancelReason.WatchNodeStopping, ended.CancelReason);
        Assert.Equal(start, ended.Revision); // everything up to it was sent: resume from start + 1
        Assert.False(await call.ResponseStream.MoveNext(timeout.Token));

        var refused = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var again = cluster.Client(follower).Watch(new WatchRequest { Key = "s/", Prefix = true, StartRevision = start + 1 });
            await again.ResponseStream.MoveNext();
        });
        Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
        var written = await cluster.SetAsync(leader, "s/1", "1");
        using var elsewhere = cluster.Client(leader).Watch(new WatchRequest { Key = "s/", Prefix = true, StartRevision = start + 1 }, cancellationToken: timeout.Token);
        Assert.True((await FirstReply(elsewhere, timeout.Token)).Created);
        var resumed = await FirstReply(elsewhere, timeout.Token);
        Assert.Equal(("s/1", written.Index), (resumed.Events[0].Key, resumed.Events[0].ModRevision));
    }
}
