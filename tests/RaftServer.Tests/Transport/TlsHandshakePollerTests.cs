using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using RaftServer.Cluster;
using RaftServer.Transport;
using P = RaftPS.Protocol;

namespace RaftServer.Tests.Transport;

/// <summary>
/// The accepting side of peer TLS on the node's port (a <see cref="PeerSortingListener"/> with peer
/// TLS, as ServerHost makes it): handshakes run on <see cref="TlsHandshakePoller"/>'s thread, so a
/// message connection reaches the node loop with its socket never watched by .NET's socket engine,
/// and a handshake that stalls still ends: at its timeout, or at once when newer ones pass the cap.
/// </summary>
public sealed class TlsHandshakePollerTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "raftps-tlspoller-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly TestPki _ca = TestPki.Root("poller test CA");

    public void Dispose()
    {
        _ca.Dispose();
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private PeerTls NodeTls(int id)
    {
        using var certificate = _ca.Node(id);
        var (cert, key) = TestPki.Write(_folder, $"node-{id}", certificate);
        return PeerTls.Load(cert, key, TestPki.WriteBundle(_folder, "ca", _ca), id);
    }

    /// <summary>Node 2's port with peer TLS; its TLS message connections go to <paramref name="accepted"/>.</summary>
    private PeerSortingListener Listen(TestLogger logger, ConcurrentQueue<TlsPeerConnection> accepted)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        socket.Listen(16);
        var handshake = new PeerHandshake(2, new ClusterIdentity(ClusterIdentity.Unknown), _ => false, logger, NodeTls(2));
        return new PeerSortingListener(socket, new SocketConnectionContextFactory(new SocketConnectionFactoryOptions(), NullLogger.Instance),
            () => false, (s, _) => s.Dispose(), handshake, logger, (connection, _) => accepted.Enqueue(connection));
    }

    /// <summary>Node 1's link to <paramref name="listener"/> over peer TLS: the real connecting side.</summary>
    private static PeerClient Node1To(PeerSortingListener listener, TestLogger logger, PeerTls tls)
    {
        var handshake = new PeerHandshake(1, new ClusterIdentity(ClusterIdentity.Unknown), _ => false, logger, tls);
        return new PeerClient(new NodeAddress(2, "127.0.0.1", ((IPEndPoint)listener.EndPoint).Port), logger, handshake: handshake);
    }

    /// <summary>
    /// Whether one of this process's epoll instances watches <paramref name="socket"/> (Linux: each
    /// epoll descriptor's fdinfo lists the descriptors it watches as "tfd: N").
    /// </summary>
    private static bool WatchedByEpoll(Socket socket)
    {
        var fd = socket.Handle.ToInt64();
        foreach (var link in Directory.GetFiles("/proc/self/fd"))
        {
            string? target;
            try
            {
                target = new FileInfo(link).LinkTarget;
            }
            catch (IOException)
            {
                continue; // closed meanwhile
            }
            if (target != "anon_inode:[eventpoll]") continue;
            var info = Path.Combine("/proc/self/fdinfo", Path.GetFileName(link));
            string[] lines;
            try
            {
                lines = File.ReadAllLines(info);
            }
            catch (IOException)
            {
                continue;
            }
            foreach (var line in lines)
            {
                if (!line.StartsWith("tfd:", StringComparison.Ordinal)) continue;
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (long.Parse(fields[1]) == fd) return true;
            }
        }
        return false;
    }

    private static async Task Until(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > SnapshotTestHost.Patience) throw new TimeoutException($"waited {SnapshotTestHost.Patience.TotalSeconds} s for {what}");
            await Task.Delay(10);
        }
    }

    [Fact]
    public async Task A_TLS_message_connection_reaches_the_loop_unwatched_by_the_socket_engine_and_carries_batches()
    {
        if (!OperatingSystem.IsLinux()) return; // what is checked is Linux's epoll
        var logger = new TestLogger();
        var accepted = new ConcurrentQueue<TlsPeerConnection>();
        await using var listener = Listen(logger, accepted);
        using var senderTls = NodeTls(1);
        await using var sender = Node1To(listener, logger, senderTls);

        await Until(() => !accepted.IsEmpty, "node 1's TLS message connection to be handed over");
        using var connection = accepted.TryDequeue(out var handed) ? handed : throw new InvalidOperationException("the handed-over connection is gone");
        Assert.Equal(1, connection.PeerId);
        Assert.False(WatchedByEpoll(connection.Socket),
            "the handshake waited on the socket through .NET's socket engine: each batch the loop reads would wake its event thread and a pool thread");

        // As the node loop: poll, pump; the batch sent after the handshake arrives, and the socket stays unwatched.
        var received = new ConcurrentQueue<P.MessageBatch>();
        var batch = new P.MessageBatch { From = 1 };
        batch.Messages.Add(new P.RaftMessage { Type = P.MessageType.Heartbeat, From = 1, To = 2, Term = 7 });
        sender.Send(batch);
        await Until(() =>
        {
            if (connection.Socket.Poll(1000, SelectMode.SelectRead) && !connection.Pump(received.Enqueue))
                throw new IOException("the connection ended before the batch arrived");
            return received.Any(b => b.Messages.Any(m => m.Term == 7));
        }, "the heartbeat of term 7");
        Assert.False(WatchedByEpoll(connection.Socket));
    }

    [Fact]
    public async Task A_handshake_that_stalls_is_closed_at_the_handshake_timeout_with_a_line_saying_so()
    {
        var logger = new TestLogger();
        var accepted = new ConcurrentQueue<TlsPeerConnection>();
        await using var listener = Listen(logger, accepted);
        using var stalled = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await stalled.ConnectAsync((IPEndPoint)listener.EndPoint);
        await stalled.SendAsync(PeerWire.TlsPreface.ToArray(), SocketFlags.None); // then no ClientHello
        var clock = Stopwatch.StartNew();

        Assert.True(await PeerSortingListenerTests.ClosedByServerAsync(stalled), "the stalled handshake's connection was never closed");
        Assert.InRange(clock.Elapsed, PeerTls.HandshakeTimeout - TimeSpan.FromSeconds(1), SnapshotTestHost.Patience);
        await Until(() => logger.Lines.Any(l => l.Contains("did not finish its handshake and hello in time")), "the line about the slow handshake");
        Assert.Empty(accepted);
    }

    [Fact]
    public async Task Past_the_cap_of_handshakes_the_oldest_is_abandoned_at_once_and_a_real_peer_gets_in()
    {
        var logger = new TestLogger();
        var accepted = new ConcurrentQueue<TlsPeerConnection>();
        await using var listener = Listen(logger, accepted);
        var clock = Stopwatch.StartNew();
        var stalled = new List<Socket>();
        try
        {
            for (var i = 0; i < PeerTlsAcceptor.MaxHandshakes; i++)
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
                stalled.Add(socket);
                await socket.ConnectAsync((IPEndPoint)listener.EndPoint);
                await socket.SendAsync(PeerWire.TlsPreface.ToArray(), SocketFlags.None);
                // The echo of the preface: this handshake is in progress before the next one starts.
                var echo = new byte[PeerWire.TlsPreface.Length];
                for (var got = 0; got < echo.Length;)
                    got += await socket.ReceiveAsync(echo.AsMemory(got), SocketFlags.None);
            }
            using var senderTls = NodeTls(1);
            await using var sender = Node1To(listener, logger, senderTls);

            Assert.True(await PeerSortingListenerTests.ClosedByServerAsync(stalled[0]), "the oldest handshake was never closed");
            Assert.True(clock.Elapsed < PeerTls.HandshakeTimeout, $"the oldest handshake was closed only after {clock.Elapsed}: by its timeout, not by the cap");
            await Until(() => !accepted.IsEmpty, "the real peer's connection past the cap");
            Assert.Contains(logger.Lines, l => l.Contains($"Abandoned the oldest of {PeerTlsAcceptor.MaxHandshakes} peer TLS handshakes"));
            Assert.True(stalled[1].Connected && !stalled[1].Poll(0, SelectMode.SelectRead), "the second oldest handshake was closed too");
        }
        finally
        {
            foreach (var socket in stalled) socket.Dispose();
            while (accepted.TryDequeue(out var connection)) connection.Dispose();
        }
    }
}
