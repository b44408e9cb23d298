using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using RaftServer.Cluster;
using RaftServer.Consensus;
using RaftServer.Transport;
using P = RaftPS.Protocol;

namespace RaftServer.Tests.Transport;

/// <summary>
/// A path that drops packets gives a sender no refusal and no reset: its data waits in the
/// kernel's retransmission queue with a back-off that grows to seconds. The link finds that out
/// itself: its pings must be answered on the connection within the ack timeout, or it is replaced.
/// (The network fault tests measure the effect: NetworkFaults/NetworkFaultTests.) In the serial
/// collection: these measure time, which the parallel unit tests would starve.
/// </summary>
[Collection(Integration.ProcessCollection.Name)]
public sealed class SilentLinkTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private static readonly PeerLinkTimings Fast = new(TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(20));

    /// <summary>Reads the preface, then everything; answers each ping with an empty frame when <paramref name="answer"/> says so.</summary>
    private static async Task ServeAsync(Socket socket, Func<bool> answer, CancellationToken ct)
    {
        try
        {
            await ServeUntilClosedAsync(socket, answer, ct);
        }
        catch (SocketException)
        {
            // the client closed the connection
        }
    }

    private static async Task ServeUntilClosedAsync(Socket socket, Func<bool> answer, CancellationToken ct)
    {
        var reader = new PeerFrameReader();
        var preface = new byte[PeerWire.Preface.Length + PeerWire.HeaderBytes];
        for (var got = 0; got < preface.Length;)
            got += await socket.ReceiveAsync(preface.AsMemory(got), SocketFlags.None, ct);
        Assert.Equal(PeerWire.Preface.ToArray(), preface[..PeerWire.Preface.Length]);
        var hello = new byte[PeerWire.HelloLength(preface.AsSpan(PeerWire.Preface.Length))];
        for (var got = 0; got < hello.Length;)
            got += await socket.ReceiveAsync(hello.AsMemory(got), SocketFlags.None, ct);
        PeerWire.ParseHello(hello);
        await socket.SendAsync(PeerWire.Hello(0, 1), SocketFlags.None, ct); // the answer of node 1, of no known cluster
        while (!ct.IsCancellationRequested)
        {
            await socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, ct); // wait until readable
            if (!reader.Receive(socket, _ => { })) return;
            if (reader.PingReceived && answer())
                await socket.SendAsync(PeerWire.Ping.ToArray(), SocketFlags.None, ct);
            reader.PingReceived = false;
        }
    }

    private static P.MessageBatch Heartbeat() =>
        new() { From = 0, Messages = { new P.RaftMessage { Type = P.MessageType.Heartbeat, From = 0, To = 1, Term = 1 } } };

    [Fact]
    public async Task A_connection_whose_pings_go_unanswered_is_replaced_within_the_ack_timeout()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var cts = new CancellationTokenSource(Patience);
        var answering = true;
        await using var peer = new PeerClient(new NodeAddress(1, "127.0.0.1", port), NullLogger.Instance, Fast);

        using var first = await listener.AcceptSocketAsync(cts.Token);
        var serving = ServeAsync(first, () => Volatile.Read(ref answering), cts.Token);
        await WaitUntil(() => peer.Reachable);
        var forwardingClient = peer.Client;
        var linkLost = peer.LinkLost;

        // The path goes silent: the peer still receives, but nothing it sends comes back.
        Volatile.Write(ref answering, false);
        var silentSince = Stopwatch.StartNew();
        for (var i = 0; i < 100 && !linkLost.IsCancellationRequested; i++)
        {
            peer.Send(Heartbeat());
            await Task.Delay(20);
        }
        Assert.True(linkLost.IsCancellationRequested, "the link did not give up on the silent connection");
        Assert.InRange(silentSince.Elapsed, Fast.AckTimeout - TimeSpan.FromMilliseconds(50), Fast.AckTimeout + TimeSpan.FromSeconds(1));
        Assert.NotSame(forwardingClient, peer.Client); // forwarded calls get a new HTTP/2 connection too

        // It closed that connection and opened a new one at once.
        using var second = await listener.AcceptSocketAsync(cts.Token);
        await serving.WaitAsync(Patience); // the first connection ended (the client closed it)
        _ = ServeAsync(second, () => true, cts.Token);
        await WaitUntil(() => peer.Reachable);
    }

    [Fact]
    public async Task A_connection_whose_pings_are_answered_is_kept()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var cts = new CancellationTokenSource(Patience);
        var log = new ListLogger();
        // A longer ack timeout than the other tests: this one must not fail when a loaded machine stalls the test.
        var timings = Fast with { AckTimeout = TimeSpan.FromSeconds(2) };
        await using var peer = new PeerClient(new NodeAddress(1, "127.0.0.1", port), log, timings);
        using var only = await listener.AcceptSocketAsync(cts.Token);
        _ = ServeAsync(only, () => true, cts.Token);
        await WaitUntil(() => peer.Reachable);
        var linkLost = peer.LinkLost;
        for (var i = 0; i < 250; i++) // 5 s of steady traffic (more than two ack timeouts): about 200 pings
        {
            peer.Send(Heartbeat());
            await Task.Delay(20);
        }
        Assert.False(linkLost.IsCancellationRequested, string.Join("\n", log.Lines));
        Assert.False(listener.Pending()); // no second connection
    }

    [Fact]
    public async Task A_link_with_nothing_to_send_pings_every_keep_alive_interval()
    {
        // Its peer closes inbound connections on which nothing arrives (PeerSockets.IdleTimeout).
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var cts = new CancellationTokenSource(Patience);
        var pings = 0;
        // A longer ack timeout: a loaded machine that stalls this test's server past 300 ms would make the client
        // reconnect, and this listener takes one connection only.
        await using var peer = new PeerClient(new NodeAddress(1, "127.0.0.1", port), NullLogger.Instance, Fast with { AckTimeout = TimeSpan.FromSeconds(2) });
        using var only = await listener.AcceptSocketAsync(cts.Token);
        _ = ServeAsync(only, () =>
        {
            Interlocked.Increment(ref pings);
            return true;
        }, cts.Token);
        await WaitUntil(() => peer.Reachable);
        var clock = Stopwatch.StartNew();
        var before = Volatile.Read(ref pings);
        await WaitUntil(() => Volatile.Read(ref pings) >= before + 3); // nothing is sent meanwhile
        Assert.True(clock.Elapsed >= Fast.KeepAliveInterval * 2, $"3 pings in {clock.ElapsedMilliseconds} ms: more than one per keep-alive interval");
    }

    [Fact]
    public async Task An_attempt_to_connect_that_gets_no_answer_is_followed_by_the_next_at_once()
    {
        using var listener = await FullBacklogListener.OpenAsync();
        await using var peer = new PeerClient(new NodeAddress(1, "127.0.0.1", listener.Port), NullLogger.Instance, Fast);
        await Task.Delay(Fast.ConnectTimeout * 3);
        Assert.False(peer.Connected);

        // The queue drains: the next attempt, within a connect timeout, gets through.
        var drained = Stopwatch.StartNew();
        listener.Drain();
        listener.CloseFillers();
        await WaitUntil(() =>
        {
            listener.Drain();
            return peer.Connected;
        });
        Assert.True(drained.Elapsed < Fast.ConnectTimeout + TimeSpan.FromMilliseconds(700),
            $"connected {drained.ElapsedMilliseconds} ms after the path opened");
    }

    [Fact]
    public void The_receiving_side_answers_a_ping_and_does_not_deliver_it()
    {
        var membership = new Membership(1, MemberSet.FromConfig(ClusterConfig.Parse(["0 127.0.0.1 1", "1 127.0.0.1 2"])));
        using var sockets = new PeerSockets(membership, NullLogger.Instance);
        var (sender, receiver) = Pair();
        using (sender)
        {
            sockets.Add(receiver, 0);
            var frame = new byte[16];
            var length = PeerWire.Write(Heartbeat(), ref frame);
            sender.Send([.. frame.AsSpan(0, length), .. PeerWire.Ping]);
            var delivered = new List<Message>();
            WaitReadable(receiver);
            sockets.ReadAvailable(delivered.AddRange);
            Assert.Single(delivered);
            var ack = new byte[8];
            sender.ReceiveTimeout = 30_000;
            Assert.Equal(4, sender.Receive(ack));
            Assert.True(PeerWire.IsPing(ack));
        }
    }

    [Fact]
    public void A_peer_that_opens_a_new_connection_has_its_old_one_closed()
    {
        // Its old connection is dead: its end was closed across a partition that also dropped the FIN.
        var membership = new Membership(1, MemberSet.FromConfig(ClusterConfig.Parse(["0 127.0.0.1 1", "1 127.0.0.1 2"])));
        using var sockets = new PeerSockets(membership, NullLogger.Instance);
        var (oldSender, oldReceiver) = Pair();
        var (newSender, newReceiver) = Pair();
        using (oldSender)
        using (newSender)
        {
            var frame = new byte[16];
            var length = PeerWire.Write(Heartbeat(), ref frame);
            sockets.Add(oldReceiver, 0);
            oldSender.Send(frame.AsSpan(0, length));
            WaitReadable(oldReceiver);
            sockets.ReadAvailable(_ => { });
            sockets.Add(newReceiver, 0);
            newSender.Send(frame.AsSpan(0, length));
            WaitReadable(newReceiver);
            sockets.ReadAvailable(_ => { });
            // The old connection was closed by the node: its far end reads the end of the stream.
            oldSender.ReceiveTimeout = 30_000;
            Assert.Equal(0, oldSender.Receive(new byte[4]));
            Assert.True(sockets.HasConnections);
        }
    }

    private static void WaitReadable(Socket socket) => Assert.True(socket.Poll(30_000_000, SelectMode.SelectRead));

    private static (Socket Sender, Socket Receiver) Pair()
    {
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var sender = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        sender.Connect(listener.LocalEndPoint!);
        return (sender, listener.Accept());
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < Patience, "the condition did not hold in time");
            await Task.Delay(5);
        }
    }

    private sealed class ListLogger : Microsoft.Extensions.Logging.ILogger
    {
        public List<string> Lines { get; } = new();
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;
        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (Lines) Lines.Add($"{DateTime.UtcNow:HH:mm:ss.fff} {formatter(state, exception)}");
        }
    }
}
