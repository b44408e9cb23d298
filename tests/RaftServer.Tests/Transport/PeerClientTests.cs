using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using RaftServer.Cluster;
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
    public async Task A_dying_peer_that_still_accepts_one_more_connection_is_reported_without_waiting_a_back_off()
    {
        // A killed process's kernel closes its connections a moment before its listening socket:
        // the link's immediate retry may be accepted and then reset. The refusal must still come
        // from a quick retry, not after a back-off (made ten minutes here, so only a quick retry
        // can report it while the test waits).
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var timings = PeerLinkTimings.Default with { MinBackoff = TimeSpan.FromMinutes(10), MaxBackoff = TimeSpan.FromMinutes(10) };
        var refused = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var peer = new PeerClient(new NodeAddress(1, "127.0.0.1", port), NullLogger.Instance, timings);
        peer.Refused = () => refused.TrySetResult();

        using (var first = await listener.AcceptSocketAsync().WaitAsync(Patience))
        {
            await WaitUntil(() => peer.Connected);
            Reset(first);
        }
        using (var second = await listener.AcceptSocketAsync().WaitAsync(Patience))
        {
            listener.Stop();
            Reset(second);
        }
        await refused.Task.WaitAsync(Patience);

        static void Reset(Socket s)
        {
            s.LingerState = new LingerOption(true, 0);
            s.Close();
        }
    }

    [Fact]
    public async Task A_refusal_callback_that_fails_does_not_end_the_link()
    {
        // The host's callback once threw while the node was still starting (it posted to a loop
        // not made yet): the link's task died and the node never sent to that peer again.
        var port = FreePort();
        var refusals = 0;
        await using var peer = new PeerClient(new NodeAddress(1, "127.0.0.1", port), NullLogger.Instance);
        peer.Refused = () =>
        {
            Interlocked.Increment(ref refusals);
            throw new InvalidOperationException("the host is not ready");
        };
        await WaitUntil(() => Volatile.Read(ref refusals) >= 2);

        using var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        using var accepted = await listener.AcceptSocketAsync().WaitAsync(Patience);
        await WaitUntil(() => peer.Connected);
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < Patience, "the condition did not hold in time");
            await Task.Delay(10);
        }
    }

    [Fact]
    public void Only_a_refused_connection_counts_as_refused()
    {
        var refused = new SocketException((int)SocketError.ConnectionRefused);
        var reset = new IOException("reset", new SocketException((int)SocketError.ConnectionReset));
        var closed = new IOException("the peer closed the connection");
        var timeout = new SocketException((int)SocketError.TimedOut);

        Assert.True(PeerClient.IsRefused(refused));
        Assert.True(PeerClient.IsRefused(new IOException("x", refused)));
        Assert.False(PeerClient.IsRefused(reset));
        Assert.False(PeerClient.IsRefused(closed)); // a suspended or stopping peer closes; its port still answers
        Assert.False(PeerClient.IsRefused(timeout)); // a host that is down or cut off: no hint

        // A broken connection is retried at once; our own cancellation is not a loss.
        Assert.True(PeerClient.IsConnectionLoss(reset));
        Assert.True(PeerClient.IsConnectionLoss(closed));
        Assert.False(PeerClient.IsConnectionLoss(new OperationCanceledException()));
    }
}
