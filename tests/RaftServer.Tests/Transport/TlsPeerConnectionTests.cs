using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf;
using RaftServer.Cluster;
using RaftServer.Consensus;
using RaftServer.Transport;
using P = RaftPS.Protocol;

namespace RaftServer.Tests.Transport;

/// <summary>A peer TLS connection read by the loop: frames read ahead with the hello, what a turn reads, pings, and a peer that reads nothing.</summary>
public sealed class TlsPeerConnectionTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private static X509Certificate2 SelfSigned()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=tls peer connection test", key, HashAlgorithmName.SHA256);
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
    }

    /// <summary>A TLS connection over loopback TCP: the accepting end (on a <see cref="LoopFedStream"/>, as <see cref="PeerTlsAcceptor"/> makes it) and the sending end.</summary>
    private static async Task<(SslStream Accepted, LoopFedStream Raw, SslStream Sender, EndPoint Remote, Socket SenderSocket)> PairAsync()
    {
        using var certificate = SelfSigned();
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await client.ConnectAsync(listener.LocalEndPoint!);
        var server = await listener.AcceptAsync();
        var raw = new LoopFedStream(server);
        var accepted = new SslStream(raw);
        var sender = new SslStream(new NetworkStream(client, ownsSocket: true));
        await Task.WhenAll(
            accepted.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = certificate }),
            sender.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost", RemoteCertificateValidationCallback = (_, _, _, _) => true }));
        return (accepted, raw, sender, server.RemoteEndPoint!, client);
    }

    /// <summary>Pumps (as the loop does when poll() says the socket is readable) until <paramref name="done"/> or the connection ends.</summary>
    private static async Task PumpUntil(TlsPeerConnection connection, Action<P.MessageBatch> deliver, Func<bool> done, string what)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!done())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"waited {Patience.TotalSeconds} s for {what}");
            if (connection.Socket.Poll(1000, SelectMode.SelectRead) && !connection.Pump(deliver))
                throw new IOException($"the connection ended before {what}");
            await Task.Yield();
        }
    }

    private static byte[] Frame(long term, int payloadBytes)
    {
        var batch = new P.MessageBatch { From = 1 };
        var m = new P.RaftMessage { Type = P.MessageType.Append, From = 1, To = 2, Term = term };
        m.Entries.Add(new P.LogEntry { Index = 1, Term = term, Data = ByteString.CopyFrom(new byte[payloadBytes]) }); // the first entry after index 0: a well-formed Append
        batch.Messages.Add(m);
        var buffer = new byte[16];
        var n = PeerWire.Write(batch, ref buffer);
        return buffer.AsSpan(0, n).ToArray();
    }

    private static async Task Until(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"waited {Patience.TotalSeconds} s for {what}");
            await Task.Delay(5);
        }
    }

    [Fact]
    public async Task A_turn_reads_a_bounded_amount_what_the_loop_has_not_read_waits_in_TCP_and_nothing_is_lost()
    {
        const int frames = 64, payload = 100_000, large = 2 << 20; // 8.5 MB: more than loopback TCP's buffers hold
        var (accepted, raw, sender, remote, _) = await PairAsync();
        await using var _ = sender;
        var reader = PipeReader.Create(accepted, new StreamPipeReaderOptions(leaveOpen: true));
        using var connection = new TlsPeerConnection(accepted, raw, reader, remote, peerId: 1);

        // The sender writes everything (what TCP's buffers cannot take waits in this task) plus one frame larger than the read buffer.
        var sending = Task.Run(async () =>
        {
            for (var t = 1; t <= frames; t++) await sender.WriteAsync(Frame(t, payload));
            await sender.WriteAsync(Frame(frames + 1, large));
        });

        // One turn reads at most MaxReceivesPerTurn socket reads (each at most a TLS record's worth of bytes to
        // decrypt): far less than what was sent, which waits in TCP (and in the sender) until the loop reads it.
        var delivered = new List<long>();
        await PumpUntil(connection, b => delivered.Add(b.Messages[0].Term), () => delivered.Count > 0, "a first batch");
        Assert.InRange(delivered.Count, 1, frames / 2);
        Assert.False(sending.IsCompleted, "the sender finished while the loop had read a few batches");

        // The loop reads on: every batch arrives, in order, and the buffer grew only to hold the large frame.
        await PumpUntil(connection, b => delivered.Add(b.Messages[0].Term), () => delivered.Count == frames + 1, "every batch");
        Assert.Equal(Enumerable.Range(1, frames + 1).Select(t => (long)t), delivered);
        await sending.WaitAsync(Patience);
        Assert.InRange(connection.BufferCapacity, large, 2 * (large + 64));
    }

    [Fact]
    public async Task Frames_the_hello_reader_read_ahead_come_first_and_pings_are_answered()
    {
        var (accepted, raw, sender, remote, _) = await PairAsync();
        await using var _ = sender;
        var reader = PipeReader.Create(accepted, new StreamPipeReaderOptions(leaveOpen: true));
        // A first frame (standing for the hello), two frames and a ping in one write; the pipe's read (as
        // the hello's) takes some or all of them, and the first frame is consumed as the acceptor consumes the hello.
        var first = Frame(0, 10);
        await sender.WriteAsync(first.Concat(Frame(1, 10)).Concat(Frame(2, 70_000)).Concat(PeerWire.Ping.ToArray()).ToArray());
        var early = await reader.ReadAsync();
        while (early.Buffer.Length < first.Length)
        {
            reader.AdvanceTo(early.Buffer.Start, early.Buffer.End);
            early = await reader.ReadAsync();
        }
        reader.AdvanceTo(early.Buffer.GetPosition(first.Length));
        using var connection = new TlsPeerConnection(accepted, raw, reader, remote, peerId: 1);
        var delivered = new List<long>();
        // The loop's first pump of a new connection delivers what came with the hello, readable socket or not.
        Assert.True(connection.Pump(b => delivered.Add(b.Messages[0].Term)));
        await sender.WriteAsync(Frame(3, 10));
        await PumpUntil(connection, b => delivered.Add(b.Messages[0].Term), () => delivered.Count == 3, "three batches");
        Assert.Equal([1L, 2L, 3L], delivered);

        using var timeout = new CancellationTokenSource(Patience);
        var ack = new byte[PeerWire.HeaderBytes];
        await sender.ReadExactlyAsync(ack, timeout.Token);
        Assert.True(PeerWire.IsPing(ack));
    }

    [Fact]
    public async Task A_batch_on_a_TLS_connection_wakes_the_loop_asleep_in_poll()
    {
        var members = new Membership(2, MemberSet.FromConfig(ClusterConfig.Parse(["1 127.0.0.1 1", "2 127.0.0.1 2", "3 127.0.0.1 3"])));
        var logger = new TestLogger();
        using var sockets = new PeerSockets(members, logger);
        var (accepted, raw, sender, remote, _) = await PairAsync();
        await using var _ = sender;
        var reader = PipeReader.Create(accepted, new StreamPipeReaderOptions(leaveOpen: true));
        var connection = new TlsPeerConnection(accepted, raw, reader, remote, peerId: 1);
        sockets.AddTls(connection, 1);
        for (var round = 1; round <= 10; round++)
        {
            // Sent while the loop sleeps or before it goes to sleep: poll() sees the TLS socket readable either way.
            var delay = round % 2 == 0 ? 0 : 30;
            var term = round;
            var writing = Task.Run(async () =>
            {
                await Task.Delay(delay);
                await sender.WriteAsync(Frame(term, 10));
            });
            var clock = Stopwatch.StartNew();
            var delivered = new List<Message>();
            while (delivered.Count == 0 && clock.Elapsed < Patience)
            {
                sockets.Sleep(20_000); // without a wake-up this sleeps its 20 s
                sockets.ReadAvailable(delivered.AddRange);
            }
            await writing;
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"round {round}: the batch reached the loop after {clock.Elapsed.TotalSeconds:F1} s (ended {connection.Ended}) {string.Join("; ", logger.Lines)}");
            Assert.Equal(term, Assert.Single(delivered).Term);
        }
    }

    [Fact]
    public async Task A_peer_that_never_reads_its_ping_acknowledgements_never_blocks_the_loop()
    {
        var (accepted, raw, sender, remote, _) = await PairAsync();
        await using var _ = sender;
        var reader = PipeReader.Create(accepted, new StreamPipeReaderOptions(leaveOpen: true));
        using var connection = new TlsPeerConnection(accepted, raw, reader, remote, peerId: 1);
        // Pings, each in its own TLS record, and one batch after them; the sender reads nothing, so the
        // acknowledgements fill its receive buffer and then this socket's send buffer.
        const int pings = 60_000;
        var sending = Task.Run(async () =>
        {
            for (var i = 0; i < pings; i++) await sender.WriteAsync(PeerWire.Ping.ToArray());
            await sender.WriteAsync(Frame(7, 10));
        });
        var delivered = new List<long>();
        var slowest = TimeSpan.Zero;
        var deadline = DateTime.UtcNow + Patience;
        var ended = false;
        while (delivered.Count == 0 && !ended)
        {
            Assert.True(DateTime.UtcNow < deadline, $"waited {Patience.TotalSeconds} s for the batch after the pings");
            if (!connection.Socket.Poll(1000, SelectMode.SelectRead)) continue;
            var clock = Stopwatch.StartNew();
            ended = !connection.Pump(b => delivered.Add(b.Messages[0].Term));
            if (clock.Elapsed > slowest) slowest = clock.Elapsed;
        }
        // Either every acknowledgement that did not fit was dropped and the batch came through, or the
        // connection was closed: never a pump that waited for the peer to read.
        Assert.True(slowest < TimeSpan.FromSeconds(2), $"a pump took {slowest.TotalMilliseconds} ms");
        if (!ended) Assert.Equal([7L], delivered);
        await sending.WaitAsync(Patience);
    }

    [Fact]
    public async Task A_TLS_record_that_does_not_decrypt_closes_only_its_connection_and_the_loop_goes_on()
    {
        var members = new Membership(2, MemberSet.FromConfig(ClusterConfig.Parse(["1 127.0.0.1 1", "2 127.0.0.1 2", "3 127.0.0.1 3"])));
        var logger = new TestLogger();
        using var sockets = new PeerSockets(members, logger);
        var (acceptedA, rawA, senderA, remoteA, socketA) = await PairAsync();
        await using var _ = senderA;
        var (acceptedB, rawB, senderB, remoteB, _) = await PairAsync();
        await using var __ = senderB;
        var forged = new TlsPeerConnection(acceptedA, rawA, PipeReader.Create(acceptedA, new StreamPipeReaderOptions(leaveOpen: true)), remoteA, peerId: 1);
        var good = new TlsPeerConnection(acceptedB, rawB, PipeReader.Create(acceptedB, new StreamPipeReaderOptions(leaveOpen: true)), remoteB, peerId: 3);
        sockets.AddTls(forged, 1);
        sockets.AddTls(good, 3);

        // An application-data record of the right shape whose bytes were not made with the session's keys,
        // written under node 1's TLS session (straight to its socket).
        var record = new byte[5 + 64];
        record[0] = 0x17;
        record[1] = 0x03;
        record[2] = 0x03;
        record[4] = 64;
        RandomNumberGenerator.Fill(record.AsSpan(5));
        await socketA.SendAsync(record);
        var delivered = new List<Message>();
        var deadline = DateTime.UtcNow + Patience;
        while (!forged.Ended)
        {
            Assert.True(DateTime.UtcNow < deadline, "the connection with the forged record is still open");
            sockets.Sleep(100);
            sockets.ReadAvailable(delivered.AddRange);
        }
        Assert.Empty(delivered);
        Assert.DoesNotContain(logger.Lines, l => l.StartsWith("Error"));

        // The other peer's connection is still read.
        var batch = new P.MessageBatch { From = 3 };
        batch.Messages.Add(new P.RaftMessage { Type = P.MessageType.Heartbeat, From = 3, To = 2, Term = 5 });
        var buffer = new byte[16];
        var n = PeerWire.Write(batch, ref buffer);
        await senderB.WriteAsync(buffer.AsMemory(0, n));
        while (delivered.Count == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "node 3's batch did not arrive");
            sockets.Sleep(100);
            sockets.ReadAvailable(delivered.AddRange);
        }
        Assert.Equal(5, Assert.Single(delivered).Term);
        Assert.False(good.Ended);
    }
}
