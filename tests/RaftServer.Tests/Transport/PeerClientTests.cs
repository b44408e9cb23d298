using System.Net;
using System.Net.Sockets;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;
using RaftServer.Hosting;
using RaftServer.Transport;

namespace RaftServer.Tests.Transport;

/// <summary>How the peer link tells "the peer's process is gone" (a refused connection) from
/// everything else; the core acts on it only as a hint (LeaderUnreachableTests).</summary>
public sealed class PeerClientTests
{
    /// <summary>Generous: only a broken implementation waits this long.</summary>
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    [Fact]
    public async Task A_port_nobody_listens_on_is_reported_as_refused()
    {
        var refused = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var peer = new PeerClient(new NodeAddress(1, "127.0.0.1", FreePort()), NullLogger.Instance);
        peer.Refused = () => refused.TrySetResult();
        await refused.Task.WaitAsync(Patience);
        Assert.False(peer.Connected);
    }

    [Fact]
    public async Task A_peer_that_accepted_the_connection_and_died_is_reported_once_its_port_is_closed()
    {
        // A listener stands in for the peer: it accepts, then "is killed": the connection is
        // reset and nothing listens on the port any more.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var refused = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var peer = new PeerClient(new NodeAddress(1, "127.0.0.1", port), NullLogger.Instance);
        peer.Refused = () => refused.TrySetResult();

        using var accepted = await listener.AcceptSocketAsync().WaitAsync(Patience);
        listener.Stop();
        accepted.LingerState = new LingerOption(true, 0);
        accepted.Close(); // RST, as the kernel does for a killed process's sockets with unread data
        await refused.Task.WaitAsync(Patience);
    }

    [Fact]
    public void Only_a_refused_connection_counts_as_refused()
    {
        var refused = new RpcException(new Status(StatusCode.Unavailable, "Error connecting to subchannel.",
            new HttpRequestException("Connection refused", new SocketException((int)SocketError.ConnectionRefused))));
        var reset = new RpcException(new Status(StatusCode.Unavailable, "Error starting gRPC call.",
            new HttpRequestException("The response ended prematurely", new IOException("reset", new SocketException((int)SocketError.ConnectionReset)))));
        var timeout = new RpcException(new Status(StatusCode.Unavailable, "Error connecting to subchannel.",
            new HttpRequestException("timed out", new SocketException((int)SocketError.TimedOut))));
        var suspended = new RpcException(new Status(StatusCode.Unavailable, "the node is suspended"));

        Assert.True(PeerClient.IsRefused(refused));
        Assert.True(PeerClient.IsRefused(new HttpRequestException("x", new SocketException((int)SocketError.ConnectionRefused))));
        Assert.False(PeerClient.IsRefused(reset));
        Assert.False(PeerClient.IsRefused(timeout)); // a host that is down or cut off: no hint
        Assert.False(PeerClient.IsRefused(suspended)); // alive, answering: no hint

        // A broken connection is retried at once; a status the peer answered with is not.
        Assert.True(PeerClient.IsConnectionLoss(reset));
        Assert.False(PeerClient.IsConnectionLoss(suspended));
    }
}
