using Grpc.Core;
using Grpc.Net.Client;
using RaftPS.Protocol;

namespace RaftServer.Tests.Integration;

/// <summary>The HTTP/2 limits of a node come from its options (--max-client-connections, --max-header-bytes).</summary>
[Collection(ProcessCollection.Name)]
public sealed class KestrelLimitsProcessTests
{
    [Fact]
    public async Task Connections_beyond_the_cap_and_oversized_headers_are_refused_and_the_node_keeps_serving()
    {
        await using var cluster = await LocalCluster.StartAsync(1, "kestrel-limits", "--quiet", "--max-client-connections", "2", "--max-header-bytes", "2048");
        await cluster.WaitForLeaderAsync();
        var address = $"http://127.0.0.1:{cluster.Ports[0]}";
        // LocalCluster's own channel is one of the two connections: one more fits, the next does not.
        using var second = GrpcChannel.ForAddress(address);
        await new RaftClient.RaftClientClient(second).GetLeaderAsync(new GetLeaderRequest(), deadline: DateTime.UtcNow.AddSeconds(5));
        using (var third = GrpcChannel.ForAddress(address))
        {
            var e = await Assert.ThrowsAsync<RpcException>(() =>
                new RaftClient.RaftClientClient(third).GetLeaderAsync(new GetLeaderRequest(), deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync);
            Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        }
        second.Dispose();
        // Once a connection closed, a new one is taken (Kestrel counts it down when the close is seen).
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            using var again = GrpcChannel.ForAddress(address);
            try
            {
                await new RaftClient.RaftClientClient(again).GetLeaderAsync(new GetLeaderRequest(), deadline: DateTime.UtcNow.AddSeconds(5));
                break;
            }
            catch (RpcException) when (sw.Elapsed < TimeSpan.FromSeconds(10))
            {
                await Task.Delay(100);
            }
        }

        var big = new Metadata { { "x-padding", new string('a', 4096) } };
        var tooLarge = await Assert.ThrowsAsync<RpcException>(() =>
            cluster.Client(0).GetLeaderAsync(new GetLeaderRequest(), big, DateTime.UtcNow.AddSeconds(5)).ResponseAsync);
        // Kestrel ends the stream or connection: the client sees the call fail before any gRPC status.
        Assert.Equal(StatusCode.Internal, tooLarge.StatusCode);
        Assert.StartsWith("Error starting gRPC call", tooLarge.Status.Detail);
        // Headers within the limit pass, and the node keeps serving.
        var small = new Metadata { { "x-padding", new string('a', 1000) } };
        var leader = await cluster.Client(0).GetLeaderAsync(new GetLeaderRequest(), small, DateTime.UtcNow.AddSeconds(5));
        Assert.Equal(0, leader.Leader.Id);
    }
}
