using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Threading.Channels;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using RaftServer.Cluster;
using RaftServer.Consensus;
using RaftServer.Transport;
using P = RaftPS.Protocol;

namespace RaftServer.Tests.Transport;

/// <summary>The reader of a peer TLS connection: frames read ahead with the hello, and the bound on what it queues for the loop.</summary>
public sealed class TlsPeerConnectionTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private static X509Certificate2 SelfSigned()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=tls peer connection test", key, HashAlgorithmName.SHA256);
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
    }

    /// <summary>A TLS connection over loopback TCP: the accepting end (read by a <see cref="TlsPeerConnection"/>) and the sending end.</summary>
    private static async Task<(SslStream Accepted, SslStream Sender, EndPoint Remote)> PairAsync()
    {
        using var certificate = SelfSigned();
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await client.ConnectAsync(listener.LocalEndPoint!);
        var server = await listener.AcceptAsync();
        var accepted = new SslStream(new NetworkStream(server, ownsSocket: true));
        var sender = new SslStream(new NetworkStream(client, ownsSocket: true));
        await Task.WhenAll(
            accepted.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = certificate }),
            sender.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost", RemoteCertificateValidationCallback = (_, _, _, _) => true }));
        return (accepted, sender, server.RemoteEndPoint!);
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
    public async Task A_connection_queues_at_most_its_byte_bound_and_then_waits_for_the_loop_losing_nothing()
    {
        const long bound = 1 << 20;
        const int frames = 64, payload = 100_000; // 6.4 MB: past the bound, well inside the old count bound (1,024 batches)
        var (accepted, sender, remote) = await PairAsync();
        await using var _ = sender;
        var reader = PipeReader.Create(accepted, new StreamPipeReaderOptions(leaveOpen: true));
        using var connection = new TlsPeerConnection(accepted, reader, remote, peerId: 1, maxQueuedBytes: bound);
        var queue = Channel.CreateUnbounded<TlsPeerBatch>();
        connection.Start(queue.Writer, () => { }, NullLogger.Instance);

        // The sender writes everything (what TCP's buffers cannot take waits in this task) plus one frame larger than the bound.
        var sending = Task.Run(async () =>
        {
            for (var t = 1; t <= frames; t++) await sender.WriteAsync(Frame(t, payload));
            await sender.WriteAsync(Frame(frames + 1, (int)bound * 2));
        });

        // Nobody takes from the queue: the reader stops at the bound instead of queueing all it can read.
        await Until(() => connection.WaitingForRoom || queue.Reader.Count == frames + 1, "the reader to fill its share or queue everything");
        Assert.True(connection.WaitingForRoom, $"the reader queued {queue.Reader.Count} batches ({connection.QueuedBytes} bytes) without waiting");
        Assert.InRange(connection.QueuedBytes, 1, bound);
        Assert.InRange(queue.Reader.Count, 1, frames - 1);

        // The loop takes them: every batch arrives, in order, and the share never goes past the bound
        // except for the one larger frame, which passes alone.
        for (var expected = 1; expected <= frames + 1; expected++)
        {
            using var timeout = new CancellationTokenSource(Patience);
            var item = await queue.Reader.ReadAsync(timeout.Token);
            Assert.Equal(expected, item.Batch.Messages[0].Term);
            Assert.True(connection.QueuedBytes <= bound || queue.Reader.Count == 0,
                $"{connection.QueuedBytes} bytes queued with {queue.Reader.Count} more batches waiting");
            connection.Taken(item);
        }
        await sending.WaitAsync(Patience);
        Assert.Equal(0, connection.QueuedBytes);
    }

    [Fact]
    public async Task Frames_the_hello_reader_read_ahead_come_first_and_pings_are_answered()
    {
        var (accepted, sender, remote) = await PairAsync();
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
        using var connection = new TlsPeerConnection(accepted, reader, remote, peerId: 1);
        var queue = Channel.CreateUnbounded<TlsPeerBatch>();
        connection.Start(queue.Writer, () => { }, NullLogger.Instance);
        await sender.WriteAsync(Frame(3, 10));

        using var timeout = new CancellationTokenSource(Patience);
        for (var expected = 1; expected <= 3; expected++)
        {
            var item = await queue.Reader.ReadAsync(timeout.Token);
            Assert.Equal(expected, item.Batch.Messages[0].Term);
            connection.Taken(item);
        }
        var ack = new byte[PeerWire.HeaderBytes];
        await sender.ReadExactlyAsync(ack, timeout.Token);
        Assert.True(PeerWire.IsPing(ack));
    }

    [Fact]
    public async Task A_batch_on_a_TLS_connection_wakes_the_loop_asleep_in_poll_or_keeps_it_from_sleeping()
    {
        var members = new Membership(2, MemberSet.FromConfig(ClusterConfig.Parse(["1 127.0.0.1 1", "2 127.0.0.1 2", "3 127.0.0.1 3"])));
        var logger = new TestLogger();
        using var sockets = new PeerSockets(members, logger);
        var (accepted, sender, remote) = await PairAsync();
        await using var _ = sender;
        var reader = PipeReader.Create(accepted, new StreamPipeReaderOptions(leaveOpen: true));
        var connection = new TlsPeerConnection(accepted, reader, remote, peerId: 1);
        sockets.AddTls(connection, 1);
        for (var round = 1; round <= 10; round++)
        {
            // Sent while the loop sleeps (a wake-up) or before it goes to sleep (the flag keeps it awake).
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
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"round {round}: the batch reached the loop after {clock.Elapsed.TotalSeconds:F1} s (ended {connection.Ended}, queued {connection.QueuedBytes}) {string.Join("; ", logger.Lines)}");
            Assert.Equal(term, Assert.Single(delivered).Term);
        }
    }
}
