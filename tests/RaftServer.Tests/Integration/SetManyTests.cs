using Google.Protobuf;
using Grpc.Core;
using RaftPS.Protocol;

namespace RaftServer.Tests.Integration;

/// <summary>SetMany against real server processes (the shared three-node cluster).</summary>
[Collection(ProcessCollection.Name)]
public sealed class SetManyTests(SharedClusterFixture fixture) : IClassFixture<SharedClusterFixture>
{
    private LocalCluster Cluster => fixture.Cluster;

    private async Task<(int Leader, int[] Followers)> Roles()
    {
        var leader = await Cluster.WaitForLeaderAsync();
        return (leader, Cluster.Ids.Where(i => i != leader).ToArray());
    }

    private static SetRequest Item(string key, string value, ulong clientId, ulong sequence) =>
        new() { Key = key, Value = ByteString.CopyFromUtf8(value), ClientId = clientId, Sequence = sequence };

    private static ulong NewClientId() => (ulong)Random.Shared.NextInt64(1, long.MaxValue);

    private Task<SetManyReply> SetManyAsync(int node, SetManyRequest request) =>
        LocalCluster.RetryAsync(() => Cluster.Client(node).SetManyAsync(request).ResponseAsync);

    [Fact]
    public async Task A_batch_applies_every_item_in_order_with_its_index()
    {
        var (leader, followers) = await Roles();
        var clientId = NewClientId();
        var request = new SetManyRequest();
        for (var i = 0; i < 50; i++) request.Items.Add(Item($"batch/order/{i:D2}", $"v{i}", clientId, (ulong)i + 1));
        request.Items.Add(Item("batch/order/same", "first", clientId, 51));
        request.Items.Add(Item("batch/order/same", "last", clientId, 52));

        var reply = await SetManyAsync(leader, request);

        Assert.Equal(52, reply.Results.Count);
        Assert.All(reply.Results, r => Assert.Equal(0, r.Code));
        for (var i = 1; i < reply.Results.Count; i++)
            Assert.True(reply.Results[i].Index > reply.Results[i - 1].Index, $"item {i} was committed before item {i - 1}");
        Assert.Equal("v7", await Cluster.GetAsync(followers[0], "batch/order/07"));
        Assert.Equal("last", await Cluster.GetAsync(followers[1], "batch/order/same"));
        Assert.Contains("Command from client: setval 52 keys", Cluster.Process(leader).Output);
    }

    [Fact]
    public async Task An_invalid_item_fails_alone()
    {
        var (leader, _) = await Roles();
        var clientId = NewClientId();
        var request = new SetManyRequest();
        request.Items.Add(Item("batch/bad/a", "1", clientId, 1));
        request.Items.Add(Item("", "empty key", clientId, 2));
        request.Items.Add(new SetRequest { Key = "batch/bad/big", Value = ByteString.CopyFrom(new byte[(1 << 20) + 1]), ClientId = clientId, Sequence = 3 });
        request.Items.Add(Item("batch/bad/b", "2", clientId, 4));

        var reply = await SetManyAsync(leader, request);

        Assert.Equal([0, (int)StatusCode.InvalidArgument, (int)StatusCode.InvalidArgument, 0], reply.Results.Select(r => r.Code));
        Assert.Contains("empty", reply.Results[1].Error);
        Assert.Contains("1 MiB", reply.Results[2].Error);
        Assert.Equal(0, reply.Results[1].Index);
        Assert.True(reply.Results[3].Index > reply.Results[0].Index);
        Assert.Equal("1", await Cluster.GetAsync(leader, "batch/bad/a"));
        Assert.Equal("2", await Cluster.GetAsync(leader, "batch/bad/b"));
        Assert.Null(await Cluster.GetAsync(leader, "batch/bad/big"));
    }

    [Fact]
    public async Task A_retried_batch_applies_once()
    {
        var (leader, followers) = await Roles();
        var clientId = NewClientId();
        var request = new SetManyRequest();
        for (var i = 0; i < 10; i++) request.Items.Add(Item($"batch/retry/{i}", "one", clientId, (ulong)i + 1));
        var first = await SetManyAsync(leader, request);

        // Another write of the same key in between: a retry that applied again would undo it.
        await Cluster.SetAsync(leader, "batch/retry/3", "two", clientId, 11);
        var retry = await SetManyAsync(followers[0], request);

        Assert.Equal(first.Results.Select(r => r.Index), retry.Results.Select(r => r.Index));
        Assert.All(retry.Results, r => Assert.Equal(0, r.Code));
        Assert.Equal("two", await Cluster.GetAsync(leader, "batch/retry/3"));
    }

    [Fact]
    public async Task A_follower_forwards_the_batch_to_the_leader()
    {
        var (leader, followers) = await Roles();
        var clientId = NewClientId();
        var request = new SetManyRequest();
        request.Items.Add(Item("batch/forward/a", "1", clientId, 1));
        request.Items.Add(Item("batch/forward/b", "2", clientId, 2));

        var reply = await SetManyAsync(followers[1], request);

        Assert.All(reply.Results, r => Assert.Equal(0, r.Code));
        Assert.True(reply.Results[1].Index > reply.Results[0].Index);
        Assert.Equal("2", await Cluster.GetAsync(leader, "batch/forward/b"));
        Assert.Contains("Command from client: setval 2 keys", Cluster.Process(followers[1]).Output);
    }

    [Fact]
    public async Task A_request_over_the_limits_is_refused_whole()
    {
        var (leader, followers) = await Roles();
        var tooMany = new SetManyRequest();
        for (var i = 0; i < 1001; i++) tooMany.Items.Add(Item($"batch/limit/{i}", "x", 0, 0));
        // Just over SetMany's 4 MiB, within the node's request limit (4 MiB + 64 KiB): SetMany's own check says so.
        var tooBig = new SetManyRequest();
        for (var i = 0; i < 4; i++)
            tooBig.Items.Add(new SetRequest { Key = $"batch/limit/big{i}", Value = ByteString.CopyFrom(new byte[1 << 20]) });
        tooBig.Items.Add(new SetRequest { Key = "batch/limit/big4", Value = ByteString.CopyFrom(new byte[32 << 10]) });
        // Over the node's request limit (--max-request-bytes): gRPC refuses it from its length.
        var overLimit = new SetManyRequest();
        for (var i = 0; i < 5; i++)
            overLimit.Items.Add(new SetRequest { Key = $"batch/limit/over{i}", Value = ByteString.CopyFrom(new byte[1 << 20]) });

        foreach (var (request, code, words) in new[]
                 {
                     (tooMany, StatusCode.InvalidArgument, "1001 items"), (tooBig, StatusCode.InvalidArgument, "4 MiB"),
                     (overLimit, StatusCode.ResourceExhausted, "exceeds the maximum configured message size"),
                 })
            foreach (var node in new[] { leader, followers[0] })
            {
                var e = await Assert.ThrowsAsync<RpcException>(() => Cluster.Client(node).SetManyAsync(request).ResponseAsync);
                Assert.Equal(code, e.StatusCode);
                Assert.Contains(words, e.Status.Detail);
            }
        Assert.Null(await Cluster.GetAsync(leader, "batch/limit/0"));
        Assert.Null(await Cluster.GetAsync(leader, "batch/limit/big0"));
        Assert.Null(await Cluster.GetAsync(leader, "batch/limit/over0"));
    }
}
