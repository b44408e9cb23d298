using Google.Protobuf;
using Grpc.Core;
using RaftPS.Protocol;

namespace RaftServer.Tests.Integration;

/// <summary>The coordination calls of the client API on real processes: conditional writes,
/// leases and keep-alives through a follower, and watch streams.</summary>
[Collection(ProcessCollection.Name)]
public sealed class CoordinationApiTests(SharedClusterFixture fixture) : IClassFixture<SharedClusterFixture>
{
    private LocalCluster Cluster => fixture.Cluster;

    private async Task<(int Leader, int[] Followers)> Roles()
    {
        var leader = await Cluster.WaitForLeaderAsync();
        return (leader, Cluster.Ids.Where(i => i != leader).ToArray());
    }

    private static ulong NewClient() => (ulong)Random.Shared.NextInt64(1, long.MaxValue);

    private Task<WriteReply> Write(int node, WriteRequest request) =>
        LocalCluster.RetryAsync(() => Cluster.Client(node).WriteAsync(request, deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync);

    [Fact]
    public async Task A_conditional_write_through_a_follower_holds_or_names_the_current_revision_and_a_retry_answers_its_first_outcome()
    {
        var (leader, followers) = await Roles();
        var first = await Cluster.SetAsync(leader, "api/cas", "v1");
        var client = NewClient();
        var stale = new WriteRequest
        {
            Op = WriteOp.WritePut, Key = "api/cas", Value = ByteString.CopyFromUtf8("mine"), ClientId = client, Sequence = 1,
            Compare = CompareKind.CompareModRevision, CompareRevision = first.Index - 1,
        };
        var failed = await Write(followers[0], stale);
        Assert.False(failed.Succeeded);
        Assert.Equal(first.Index, failed.KeyRevision);
        Assert.True(failed.Existed);

        var fresh = stale.Clone();
        fresh.Sequence = 2;
        fresh.CompareRevision = first.Index;
        var won = await Write(followers[1], fresh);
        Assert.True(won.Succeeded);
        Assert.Equal(won.Index, won.KeyRevision);
        Assert.Equal(won.Index, won.Revision);

        // The key moved on; the first request, sent again, still answers that it failed.
        await Cluster.SetAsync(leader, "api/cas", "v3");
        var retried = await Write(leader, stale);
        Assert.Equal(failed, retried);
        Assert.Equal("v3", await Cluster.GetAsync(followers[0], "api/cas"));

        var get = await Cluster.Client(followers[0]).GetAsync(new GetRequest { Key = "api/cas" });
        Assert.Equal((first.Index, 3L), (get.CreateRevision, get.Version));
        Assert.True(get.ModRevision > won.Index);
        Assert.True(get.Revision >= get.ModRevision);

        var absent = await Write(followers[0], new WriteRequest { Op = WriteOp.WriteDelete, Key = "api/cas", Compare = CompareKind.CompareValue, CompareValue = ByteString.CopyFromUtf8("v1") });
        Assert.False(absent.Succeeded);
        var bad = await Assert.ThrowsAsync<RpcException>(() => Cluster.Client(leader).WriteAsync(new WriteRequest { Op = WriteOp.WriteDelete, Key = "api/cas", Lease = 5 }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, bad.StatusCode);
    }

    [Fact]
    public async Task Leases_are_granted_kept_alive_and_revoked_through_followers_and_revoking_deletes_their_keys()
    {
        var (_, followers) = await Roles();
        var grant = await LocalCluster.RetryAsync(() => Cluster.Client(followers[0]).LeaseGrantAsync(new LeaseGrantRequest { TtlSeconds = 30, ClientId = NewClient(), Sequence = 1 }).ResponseAsync);
        Assert.True(grant.Id > 0);
        await LocalCluster.RetryAsync(() => Cluster.Client(followers[1]).SetAsync(new SetRequest { Key = "api/leased", Value = ByteString.CopyFromUtf8("x"), Lease = grant.Id }).ResponseAsync);
        var get = await Cluster.Client(followers[1]).GetAsync(new GetRequest { Key = "api/leased" });
        Assert.Equal(grant.Id, get.Lease);

        // A keep-alive at a follower is renewed by the leader.
        var alive = await LocalCluster.RetryAsync(() => Cluster.Client(followers[1]).LeaseKeepAliveAsync(new LeaseKeepAliveRequest { Id = grant.Id }).ResponseAsync);
        Assert.True(alive.Found);
        Assert.Equal(30, alive.TtlSeconds);

        var revoke = await LocalCluster.RetryAsync(() => Cluster.Client(followers[0]).LeaseRevokeAsync(new LeaseRevokeRequest { Id = grant.Id, ClientId = NewClient(), Sequence = 1 }).ResponseAsync);
        Assert.True(revoke.Found);
        Assert.Null(await Cluster.GetAsync(followers[1], "api/leased"));
        var gone = await LocalCluster.RetryAsync(() => Cluster.Client(followers[0]).LeaseKeepAliveAsync(new LeaseKeepAliveRequest { Id = grant.Id }).ResponseAsync);
        Assert.False(gone.Found);
        var onGone = await Assert.ThrowsAsync<RpcException>(() => Cluster.Client(followers[0]).SetAsync(new SetRequest { Key = "api/leased", Value = ByteString.CopyFromUtf8("y"), Lease = grant.Id }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, onGone.StatusCode);
        var tooLong = await Assert.ThrowsAsync<RpcException>(() => Cluster.Client(followers[0]).LeaseGrantAsync(new LeaseGrantRequest { TtlSeconds = 0 }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, tooLong.StatusCode);
    }

    [Fact]
    public async Task A_lease_nobody_keeps_alive_expires_and_a_watcher_sees_its_key_deleted()
    {
        var (leader, followers) = await Roles();
        var start = (await Cluster.SetAsync(leader, "api/expiring-marker", "m")).Index + 1;
        var grant = await LocalCluster.RetryAsync(() => Cluster.Client(leader).LeaseGrantAsync(new LeaseGrantRequest { TtlSeconds = 1 }).ResponseAsync);
        await Cluster.SetAsync(leader, "api/expiring", "soon");
        await LocalCluster.RetryAsync(() => Cluster.Client(leader).SetAsync(new SetRequest { Key = "api/expiring", Value = ByteString.CopyFromUtf8("leased"), Lease = grant.Id }).ResponseAsync);

        using var timeout = new CancellationTokenSource(LocalCluster.Patience);
        using var call = Cluster.Client(followers[0]).Watch(new WatchRequest { Key = "api/expiring", StartRevision = start }, cancellationToken: timeout.Token);
        var events = new List<WatchEvent>();
        var created = false;
        while (events.Count < 3 && await call.ResponseStream.MoveNext(timeout.Token))
        {
            var reply = call.ResponseStream.Current;
            Assert.False(reply.Canceled, reply.CancelDetail);
            if (reply.Created)
            {
                Assert.Equal(start, reply.StartRevision);
                created = true;
            }
            events.AddRange(reply.Events);
            if (reply.Events.Count > 0) Assert.True(reply.Revision >= reply.Events[^1].ModRevision);
        }
        Assert.True(created);
        Assert.Equal([EventKind.EventPut, EventKind.EventPut, EventKind.EventDelete], events.Select(e => e.Kind));
        Assert.Equal(["soon", "leased", ""], events.Select(e => e.Value.ToStringUtf8()));
        Assert.Equal(grant.Id, events[1].Lease);
        Assert.True(events[0].ModRevision < events[1].ModRevision && events[1].ModRevision < events[2].ModRevision);
    }

    [Fact]
    public async Task A_watch_of_every_key_from_revision_one_is_served_and_a_negative_start_is_refused()
    {
        var (leader, _) = await Roles();
        await Cluster.SetAsync(leader, "api/any", "x");
        using var call = Cluster.Client(leader).Watch(new WatchRequest { Key = "", Prefix = true, StartRevision = 1 });
        // The shared cluster's window holds all its history (revision 1 is the first leader's no-op).
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.True(call.ResponseStream.Current.Created);
        var bad = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var negative = Cluster.Client(leader).Watch(new WatchRequest { Key = "k", StartRevision = -1 });
            await negative.ResponseStream.MoveNext();
        });
        Assert.Equal(StatusCode.InvalidArgument, bad.StatusCode);
    }
}
