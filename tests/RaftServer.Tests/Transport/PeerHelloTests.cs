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
/// The hello of a peer connection (docs/security.md, "Cluster identity", "Peer connections"): both
/// sides refuse a peer of another cluster with one line naming both ids, and a connection carries
/// only the batches of the node its hello named.
/// </summary>
public sealed class PeerHelloTests
{
    private const ulong OurCluster = 0x0123_4567_89ab_cdef;
    private const ulong OtherCluster = 0xfedc_ba98_7654_3210;
    private static readonly TimeSpan Patience = SnapshotTestHost.Patience;

    private static byte[] Frame(int from, long term)
    {
        var batch = new P.MessageBatch { From = from };
        batch.Messages.Add(new P.RaftMessage { Type = P.MessageType.Heartbeat, From = from, To = 2, Term = term });
        var buffer = new byte[16];
        var n = PeerWire.Write(batch, ref buffer);
        return buffer.AsSpan(0, n).ToArray();
    }

    private static byte[] Opening(ulong clusterId, int from) => [.. PeerWire.Preface, .. PeerWire.Hello(clusterId, from)];

    private static async Task<Socket> ConnectAsync(int port)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(IPAddress.Loopback, port);
        return socket;
    }

    /// <summary>Reads the node's hello answer off the connection.</summary>
    private static async Task<P.PeerHello> ReadAnswerAsync(Socket socket)
    {
        using var patience = new CancellationTokenSource(Patience);
        var header = new byte[PeerWire.HeaderBytes];
        for (var got = 0; got < header.Length;)
        {
            var n = await socket.ReceiveAsync(header.AsMemory(got), SocketFlags.None, patience.Token);
            Assert.True(n > 0, "the node closed the connection without an answer");
            got += n;
        }
        var body = new byte[PeerWire.HelloLength(header)];
        for (var got = 0; got < body.Length;)
            got += await socket.ReceiveAsync(body.AsMemory(got), SocketFlags.None, patience.Token);
        return PeerWire.ParseHello(body);
    }

    /// <summary>What a connecting PeerClient sends first, read off the accepted socket: the preface, then its hello.</summary>
    private static async Task<P.PeerHello> ReadOpeningAsync(Socket accepted)
    {
        var opening = new byte[PeerWire.Preface.Length + PeerWire.HeaderBytes];
        for (var got = 0; got < opening.Length;) got += await accepted.ReceiveAsync(opening.AsMemory(got), SocketFlags.None);
        var hello = new byte[PeerWire.HelloLength(opening.AsSpan(PeerWire.Preface.Length))];
        for (var got = 0; got < hello.Length;) got += await accepted.ReceiveAsync(hello.AsMemory(got), SocketFlags.None);
        return PeerWire.ParseHello(hello);
    }

    [Fact]
    public async Task A_peer_of_another_cluster_gets_this_nodes_answer_and_is_closed_with_one_line_naming_both_ids()
    {
        var logger = new TestLogger();
        await using var host = await SnapshotTestHost.StartAsync(new FakeSnapshotSink(), logger, clusterId: OurCluster);

        for (var attempt = 0; attempt < 5; attempt++) // a peer retrying: the line is not repeated
        {
            using var socket = await ConnectAsync(host.Port);
            await socket.SendAsync((byte[])[.. Opening(OtherCluster, 1), .. Frame(1, 7)]);
            var answer = await ReadAnswerAsync(socket);
            Assert.Equal(OurCluster, answer.ClusterId);
            Assert.Equal(2, answer.NodeId);
            Assert.True(await PeerSortingListenerTests.ClosedByServerAsync(socket));
        }

        Assert.Empty(host.AcceptedPeers);
        Assert.Equal(0, host.Batches.Reader.Count);
        var refusal = Assert.Single(logger.Lines, l => l.Contains("Refused a peer connection", StringComparison.Ordinal));
        Assert.Contains($"from node 1 at 127.0.0.1:", refusal, StringComparison.Ordinal);
        Assert.Contains($"it belongs to cluster {ClusterIdentity.Format(OtherCluster)}, this node to cluster {ClusterIdentity.Format(OurCluster)}",
            refusal, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_peer_of_the_same_cluster_or_of_none_yet_is_accepted_and_answered()
    {
        await using var host = await SnapshotTestHost.StartAsync(new FakeSnapshotSink(), new TestLogger(), clusterId: OurCluster);
        foreach (var (theirs, from) in new[] { (OurCluster, 1), (ClusterIdentity.Unknown, 3) })
        {
            using var socket = await ConnectAsync(host.Port);
            await socket.SendAsync((byte[])[.. Opening(theirs, from), .. Frame(from, 7)]);
            var answer = await ReadAnswerAsync(socket);
            Assert.Equal(OurCluster, answer.ClusterId);
            var batch = await host.Batches.Reader.ReadAsync().AsTask().WaitAsync(Patience);
            Assert.Equal(from, batch.From);
        }
        Assert.Equal([1, 3], host.AcceptedPeers);
    }

    [Fact]
    public async Task A_removed_peer_is_answered_that_it_was_removed_and_closed()
    {
        var logger = new TestLogger();
        await using var host = await SnapshotTestHost.StartAsync(new FakeSnapshotSink(), logger, clusterId: OurCluster, removed: id => id == 3);

        using (var removed = await ConnectAsync(host.Port))
        {
            await removed.SendAsync((byte[])[.. Opening(OurCluster, 3), .. Frame(3, 7)]);
            var answer = await ReadAnswerAsync(removed);
            Assert.Equal((OurCluster, 2, true), (answer.ClusterId, answer.NodeId, answer.Removed));
            Assert.True(await PeerSortingListenerTests.ClosedByServerAsync(removed));
        }
        using (var member = await ConnectAsync(host.Port))
        {
            await member.SendAsync((byte[])[.. Opening(OurCluster, 1), .. Frame(1, 7)]);
            Assert.False((await ReadAnswerAsync(member)).Removed);
            Assert.Equal(1, (await host.Batches.Reader.ReadAsync().AsTask().WaitAsync(Patience)).From);
        }
        Assert.Equal([1], host.AcceptedPeers);
        Assert.Contains(logger.Lines, l => l.Contains("Refused a peer connection from node 3 at 127.0.0.1:", StringComparison.Ordinal)
            && l.Contains("it was removed from the cluster", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_node_answered_that_it_was_removed_says_so_once_and_keeps_away()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var logger = new TestLogger();
        var handshake = new PeerHandshake(3, new ClusterIdentity(OurCluster), _ => false, logger);
        // Back-offs of 20 ms to 1 s: a refused link waits the longest before its next attempt.
        var timings = new PeerLinkTimings(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(20))
        {
            MinBackoff = TimeSpan.FromMilliseconds(20), MaxBackoff = TimeSpan.FromSeconds(1),
        };
        await using var peer = new PeerClient(new NodeAddress(1, "127.0.0.1", port), logger, timings, handshake);

        var answered = new List<DateTime>();
        for (var attempt = 0; attempt < 2; attempt++)
        {
            using var accepted = await listener.AcceptSocketAsync().WaitAsync(Patience);
            await ReadOpeningAsync(accepted);
            answered.Add(DateTime.UtcNow);
            await accepted.SendAsync(PeerWire.Hello(OurCluster, 1, removed: true), SocketFlags.None);
            Assert.True(await PeerSortingListenerTests.ClosedByServerAsync(accepted)); // the client ends it
            Assert.False(peer.Reachable);
        }
        Assert.True(answered[1] - answered[0] >= TimeSpan.FromMilliseconds(900), $"the next attempt came after {answered[1] - answered[0]}");
        var line = Assert.Single(logger.Lines, l => l.Contains("Node 1 at 127.0.0.1:", StringComparison.Ordinal));
        Assert.Contains("refused this node (node 3): its configuration removed this node from the cluster", line, StringComparison.Ordinal);
        Assert.StartsWith("Error", line, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("older")]
    [InlineData("self")]
    [InlineData("oversized hello")]
    public async Task A_connection_that_does_not_say_who_it_is_properly_is_closed_and_delivers_nothing(string what)
    {
        var logger = new TestLogger();
        await using var host = await SnapshotTestHost.StartAsync(new FakeSnapshotSink(), logger, clusterId: OurCluster);
        using var socket = await ConnectAsync(host.Port);
        byte[] opening = what switch
        {
            "older" => [.. PeerWire.PrefaceVersion1], // the protocol before the hello: frames right away
            "self" => Opening(OurCluster, 2),
            _ => [.. PeerWire.Preface, 0xFF, 0, 0, 0],
        };
        await socket.SendAsync((byte[])[.. opening, .. Frame(1, 7)]);

        Assert.True(await PeerSortingListenerTests.ClosedByServerAsync(socket));
        Assert.Empty(host.AcceptedPeers);
        Assert.Equal(0, host.Batches.Reader.Count);
        var expected = what switch
        {
            "older" => "the peer protocol of an older RaftPS",
            "self" => "this node's own id",
            _ => "a hello of 255 bytes",
        };
        Assert.Contains(logger.Lines, l => l.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Silent_connections_are_sorted_without_a_thread_each_capped_and_closed_after_the_sort_timeout()
    {
        var logger = new TestLogger();
        await using var host = await SnapshotTestHost.StartAsync(new FakeSnapshotSink(), logger, clusterId: OurCluster);
        var threadsBefore = Process.GetCurrentProcess().Threads.Count;
        const int Silent = PeerSortingListener.MaxPending + 200;
        var sockets = new List<Socket>();
        try
        {
            for (var i = 0; i < Silent; i++) sockets.Add(await ConnectAsync(host.Port));
            // The oldest beyond the cap are closed at once.
            var closedEarly = 0;
            foreach (var s in sockets.Take(200))
                if (await PeerSortingListenerTests.ClosedByServerAsync(s)) closedEarly++;
            Assert.Equal(200, closedEarly);
            Assert.Contains(logger.Lines, l => l.Contains("had not said what they are", StringComparison.Ordinal));
            Assert.InRange(Process.GetCurrentProcess().Threads.Count, 0, threadsBefore + 50);

            // A peer still gets in.
            using (var peer = await ConnectAsync(host.Port))
            {
                await peer.SendAsync((byte[])[.. Opening(OurCluster, 1), .. Frame(1, 9)]);
                var batch = await host.Batches.Reader.ReadAsync().AsTask().WaitAsync(Patience);
                Assert.Equal(9, Assert.Single(batch.Messages).Term);
            }

            // The rest are closed once the sort timeout has passed.
            var clock = Stopwatch.StartNew();
            foreach (var s in sockets.Skip(200)) Assert.True(await PeerSortingListenerTests.ClosedByServerAsync(s));
            Assert.True(clock.Elapsed < PeerSortingListener.SortTimeout + TimeSpan.FromSeconds(10), $"closed after {clock.Elapsed}");
        }
        finally
        {
            foreach (var s in sockets) s.Dispose();
        }
    }

    [Fact]
    public async Task The_connecting_side_refuses_an_answer_of_another_cluster_and_logs_both_ids_once()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var logger = new TestLogger();
        var handshake = new PeerHandshake(0, new ClusterIdentity(OurCluster), _ => false, logger);
        var timings = new PeerLinkTimings(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(20));
        await using var peer = new PeerClient(new NodeAddress(1, "127.0.0.1", port), logger, timings, handshake);

        for (var attempt = 0; attempt < 3; attempt++)
        {
            using var accepted = await listener.AcceptSocketAsync().WaitAsync(Patience);
            var theirs = await ReadOpeningAsync(accepted);
            Assert.Equal((OurCluster, 0), (theirs.ClusterId, theirs.NodeId));
            await accepted.SendAsync(PeerWire.Hello(OtherCluster, 1), SocketFlags.None);
            Assert.True(await PeerSortingListenerTests.ClosedByServerAsync(accepted)); // the client ends it
            Assert.False(peer.Reachable);
        }
        var refusal = Assert.Single(logger.Lines, l => l.Contains("Refused the connection to node 1", StringComparison.Ordinal));
        Assert.Contains($"it belongs to cluster {ClusterIdentity.Format(OtherCluster)}, this node to cluster {ClusterIdentity.Format(OurCluster)}",
            refusal, StringComparison.Ordinal);
    }

    [Fact]
    public void Refusals_are_rate_limited_by_the_senders_address_not_by_the_ids_it_writes()
    {
        // A sender naming a new cluster or node id on every connection must not get a line for each.
        var logger = new TestLogger();
        var handshake = new PeerHandshake(0, new ClusterIdentity(OurCluster), _ => false, logger);
        var remote = new IPEndPoint(IPAddress.Parse("10.9.8.7"), 40000);
        for (var i = 1; i <= 50; i++)
            Assert.False(handshake.Admit(new P.PeerHello { ClusterId = OtherCluster + (ulong)i, NodeId = i }, new IPEndPoint(remote.Address, 40000 + i)));
        Assert.Single(logger.Lines, l => l.Contains("Refused a peer connection", StringComparison.Ordinal));

        // Another address gets its own line.
        Assert.False(handshake.Admit(new P.PeerHello { ClusterId = OtherCluster, NodeId = 1 }, new IPEndPoint(IPAddress.Parse("10.9.8.6"), 40000)));
        Assert.Equal(2, logger.Lines.Count(l => l.Contains("Refused a peer connection", StringComparison.Ordinal)));
    }

    private static Membership Members() => new(2, MemberSet.FromConfig(ClusterConfig.Parse(["1 127.0.0.1 1", "2 127.0.0.1 2", "3 127.0.0.1 3"])));

    private static (Socket Sender, Socket Receiver) Pair()
    {
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var sender = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        sender.Connect(listener.LocalEndPoint!);
        return (sender, listener.Accept());
    }

    [Fact]
    public void A_batch_that_claims_another_sender_than_its_connections_hello_is_dropped()
    {
        var logger = new TestLogger();
        using var sockets = new PeerSockets(Members(), logger);
        var (sender, receiver) = Pair();
        using (sender)
        {
            sockets.Add(receiver, 3);
            sender.Send([.. Frame(1, 5), .. Frame(3, 6)]); // node 1's name on node 3's connection, then node 3's own
            var delivered = new List<Message>();
            var clock = Stopwatch.StartNew();
            while (delivered.Count == 0 && clock.Elapsed < Patience)
            {
                sockets.Sleep(100);
                sockets.ReadAvailable(delivered.AddRange);
            }
            var only = Assert.Single(delivered);
            Assert.Equal((3, 6L), (only.From, only.Term));
            Assert.Contains(logger.Lines, l => l.Contains("it says it is from node 1, its connection is node 3's", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void A_silent_inbound_connection_is_closed_after_the_idle_timeout_and_one_that_pings_is_kept()
    {
        using var sockets = new PeerSockets(Members(), NullLogger.Instance, idleTimeout: TimeSpan.FromMilliseconds(300));
        var (silent, silentReceiver) = Pair();
        var (pinging, pingingReceiver) = Pair();
        using (silent)
        using (pinging)
        {
            sockets.Add(silentReceiver, 1);
            sockets.Add(pingingReceiver, 3);
            silent.Blocking = false;
            var clock = Stopwatch.StartNew();
            var closed = false;
            while (!closed && clock.Elapsed < Patience)
            {
                pinging.Send(PeerWire.Ping);
                sockets.Sleep(50);
                sockets.ReadAvailable(_ => { });
                try
                {
                    closed = silent.Receive(new byte[4]) == 0;
                }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.WouldBlock)
                {
                }
            }
            Assert.True(closed, "the silent connection was not closed");
            Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(250), Patience);
            Assert.True(sockets.HasConnections); // the pinging one is open
            pinging.ReceiveTimeout = 30_000;
            Assert.Equal(4, pinging.Receive(new byte[4])); // and answered
        }
    }

    [Fact]
    public void A_nodes_newer_connection_replaces_its_older_one_as_it_arrives()
    {
        using var sockets = new PeerSockets(Members(), NullLogger.Instance);
        var (oldSender, oldReceiver) = Pair();
        var (newSender, newReceiver) = Pair();
        using (oldSender)
        using (newSender)
        {
            sockets.Add(oldReceiver, 1);
            sockets.Add(newReceiver, 1);
            oldSender.ReceiveTimeout = 30_000;
            Assert.Equal(0, oldSender.Receive(new byte[4]));
        }
    }

    [Fact]
    public void Connections_from_unlisted_nodes_are_capped()
    {
        using var sockets = new PeerSockets(Members(), NullLogger.Instance);
        var pairs = Enumerable.Range(0, PeerSockets.MaxUnlistedConnections + 2).Select(_ => Pair()).ToList();
        try
        {
            for (var i = 0; i < pairs.Count; i++) sockets.Add(pairs[i].Receiver, 100 + i);
            // The two oldest are closed; the newest are kept.
            for (var i = 0; i < 2; i++)
            {
                pairs[i].Sender.ReceiveTimeout = 30_000;
                Assert.Equal(0, pairs[i].Sender.Receive(new byte[4]));
            }
            pairs[^1].Sender.Blocking = false;
            var e = Assert.Throws<SocketException>(() => pairs[^1].Sender.Receive(new byte[4]));
            Assert.Equal(SocketError.WouldBlock, e.SocketErrorCode);
        }
        finally
        {
            foreach (var (s, _) in pairs) s.Dispose();
        }
    }
}
