using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using RaftServer.Cluster;
using RaftServer.Consensus;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>What the node loop asks of the peers' inbound connections (<see cref="PeerSockets"/>).</summary>
public interface IPeerSockets
{
    /// <summary>Whether any peer connection is open (the loop then waits in <see cref="Sleep"/>).</summary>
    bool HasConnections { get; }
    /// <summary>A connection whose hello said it is from node <paramref name="peerId"/> (PeerSortingListener).</summary>
    void Add(Socket socket, int peerId);
    /// <summary>A peer TLS connection whose certificate and hello named node <paramref name="peerId"/> (PeerTlsAcceptor).</summary>
    void AddTls(TlsPeerConnection connection, int peerId);
    /// <summary>Polls without blocking for a while; true when a socket became readable or <paramref name="hasWork"/> said so.</summary>
    bool Spin(Func<bool> hasWork);
    /// <summary>Blocks until a peer socket is readable, <see cref="Wake"/> is called, or the timeout passes.</summary>
    void Sleep(int timeoutMs);
    /// <summary>Any thread: ends a <see cref="Sleep"/> (or makes the next one return at once).</summary>
    void Wake();
    /// <summary>Reads what the peers sent (one read of each readable socket) and hands each batch's messages to <paramref name="deliver"/>.</summary>
    void ReadAvailable(Action<List<Message>> deliver);
    /// <summary>Closes every peer connection (suspend, stop): the peers reconnect.</summary>
    void CloseAll();
}

/// <summary>
/// The peers' message connections into this node, read by the node loop's thread itself. With
/// nothing to do, the loop polls these sockets for a short while (<see cref="Spin"/>), then
/// sleeps in poll() on them and on a wake-up socket that <see cref="Wake"/> writes to
/// (<see cref="Sleep"/>). So a peer's batch (a follower's acknowledgement of a read round, a
/// leader's heartbeat) reaches the core with one thread wake-up at most, instead of going
/// through the socket event thread, a thread-pool worker and a wake-up of the loop
/// (docs/design.md, "The peer transport"). Not thread-safe except <see cref="Wake"/>: the loop
/// thread owns it.
/// <para>
/// Each connection belongs to the node its hello named: batches that say they are from another
/// node are dropped, a node's newer connection replaces its older one, a connection silent for
/// <see cref="IdleTimeout"/> (no frame and no ping: a link pings at least every
/// <see cref="PeerLinkTimings.KeepAliveInterval"/>) is closed, and at most
/// <see cref="MaxUnlistedConnections"/> connections come from nodes that are neither members nor
/// remotes (docs/security.md, "Peer connections").
/// </para>
/// </summary>
public sealed class PeerSockets : IPeerSockets, IDisposable
{
    /// <summary>
    /// Before it sleeps, the loop polls without blocking up to this many times (yielding between
    /// polls), for at most <see cref="SpinMaxTicks"/>: an acknowledgement that comes within that
    /// time costs no wake-up of a sleeping thread.
    /// </summary>
    private const int Spins = 600;
    private static readonly long SpinMaxTicks = Stopwatch.Frequency / 1000; // 1 ms

    /// <summary>
    /// The loop spins only while it is busy: it waited at least <see cref="BusyWaitsPerWindow"/>
    /// times in the last window of <see cref="BusyWindowTicks"/>. An idle cluster (a heartbeat
    /// round per tick: a few waits a tick) does not spin, so an idle node stays near 1% of a core.
    /// </summary>
    private const int BusyWaitsPerWindow = 20;
    private static readonly long BusyWindowTicks = Stopwatch.Frequency / 10; // 100 ms
    private long _busyWindowStart;
    private int _waitsInWindow;
    private bool _busy;

    /// <summary>Connections from nodes the membership lists neither as members nor as remotes (a
    /// leader this node does not know yet says where it listens in its first batch); past this many
    /// the oldest is closed.</summary>
    public const int MaxUnlistedConnections = 8;

    private sealed class InboundPeer(Socket socket, int peerId, long now)
    {
        public Socket Socket { get; } = socket;
        public PeerFrameReader Reader { get; } = new();
        /// <summary>The node the connection's hello named: the only sender whose batches it carries.</summary>
        public int PeerId { get; } = peerId;
        /// <summary>When bytes last arrived (a Stopwatch timestamp).</summary>
        public long LastHeard { get; set; } = now;
    }

    /// <summary>An inbound connection on which nothing (not even a ping) arrived for this long is closed.</summary>
    public TimeSpan IdleTimeout { get; }
    private readonly long _idleTicks;
    private long _nextIdleSweep;
    private readonly LogLimiter _limiter = new(TimeSpan.FromMinutes(1));

    private readonly Membership _membership;
    private readonly ILogger _logger;
    private readonly List<InboundPeer> _inbound = new();
    /// <summary>Peer TLS connections: polled with the plain ones, decrypted on this thread (<see cref="TlsPeerConnection.Pump"/>).</summary>
    private readonly List<TlsPeerConnection> _tls = new();
    private readonly List<Socket> _readable = new();
    private readonly PollWakeup _wakeup = new();
    /// <summary>The last wait filled <see cref="_readable"/> with the sockets that are readable.</summary>
    private bool _polled;
    private Action<List<Message>>? _deliver;
    private readonly Action<P.MessageBatch> _deliverBatch;
    /// <summary>The connection being read (for <see cref="_deliverBatch"/>).</summary>
    private InboundPeer? _reading;
    private readonly Action<P.MessageBatch> _deliverTlsBatch;
    /// <summary>The TLS connection being read (for <see cref="_deliverTlsBatch"/>).</summary>
    private TlsPeerConnection? _readingTls;

    /// <param name="idleTimeout">Default: that of the default timers (<see cref="PeerLinkTimings.InboundIdleTimeout"/>).</param>
    public PeerSockets(Membership membership, ILogger logger, TimeSpan? idleTimeout = null)
    {
        _membership = membership;
        _logger = logger;
        IdleTimeout = idleTimeout ?? PeerLinkTimings.Default.InboundIdleTimeout;
        _idleTicks = (long)(IdleTimeout.TotalSeconds * Stopwatch.Frequency);
        _deliverBatch = batch =>
        {
            if (_reading is { } peer && peer.PeerId != batch.From)
            {
                // Its hello said another node: a forged or confused sender. Without TLS the hello is
                // a claim too, but a socket that named one node cannot speak for the others.
                DropForeign(RemoteAddress(peer.Socket), Remote(peer.Socket), batch.From, $"its connection is node {peer.PeerId}'s");
                return;
            }
            Deliver(batch);
        };
        _deliverTlsBatch = batch =>
        {
            var tls = _readingTls!;
            if (tls.PeerId != batch.From)
            {
                // The connection's certificate and hello name another node: a forged or confused sender.
                DropForeign(tls.RemoteAddress, tls.Remote, batch.From, $"its TLS connection is node {tls.PeerId}'s (its certificate names node {tls.PeerId})");
                return;
            }
            Deliver(batch);
        };
        // A datagram socket on loopback that Sleep polls with the peers, for Wake to write to.
    }

    public bool HasConnections => _inbound.Count > 0 || _tls.Count > 0;

    /// <summary>
    /// A peer's new connection. Non-blocking: the loop only reads what poll() said is there, and the
    /// acknowledgement of a ping must never block it (a peer that does not read them gets none).
    /// </summary>
    public void Add(Socket socket, int peerId)
    {
        socket.Blocking = false;
        // A peer keeps one connection to this node: when it has opened a new one, an older one is
        // dead (its end closed it without our hearing: a partition drops the FIN too) or not the
        // peer's at all, so it is closed.
        for (var i = _inbound.Count - 1; i >= 0; i--)
            if (_inbound[i].PeerId == peerId) Drop(i);
        _inbound.Add(new InboundPeer(socket, peerId, Stopwatch.GetTimestamp()));
        if (!_membership.IsPeer(peerId))
        {
            var unlisted = 0;
            for (var i = _inbound.Count - 1; i >= 0; i--)
                if (!_membership.IsPeer(_inbound[i].PeerId) && ++unlisted > MaxUnlistedConnections) Drop(i);
        }
    }

    public void AddTls(TlsPeerConnection connection, int peerId)
    {
        for (var i = _tls.Count - 1; i >= 0; i--)
            if (_tls[i].PeerId == peerId) DropTls(i);
        _tls.Add(connection);
        if (!_membership.IsPeer(peerId))
        {
            var unlisted = 0;
            for (var i = _tls.Count - 1; i >= 0; i--)
                if (!_membership.IsPeer(_tls[i].PeerId) && ++unlisted > MaxUnlistedConnections) DropTls(i);
        }
        // What arrived with the hello is delivered at the next read; the socket is polled from now on.
        _tlsToStart = true;
    }

    /// <summary>A TLS connection was added: the next <see cref="ReadAvailable"/> takes it over (and what came with its hello).</summary>
    private bool _tlsToStart;

    /// <summary>A batch whose sender is not the node its connection belongs to: dropped, and said (rate-limited per address).</summary>
    private void DropForeign(string remoteAddress, string remote, int claimed, string connection)
    {
        // Limited on the address, not on ids the sender chose: those would evade the limit.
        if (_limiter.Allow("from " + remoteAddress, out var held))
            _logger.LogWarning("Dropped a batch from {Remote}: it says it is from node {From}, {Connection}{Held}",
                remote, claimed, connection, held > 0 ? $" ({held} more in the last minute)" : "");
    }

    private void Deliver(P.MessageBatch batch)
    {
        if (PeerInbox.ToMessages(_membership, batch) is { } messages) _deliver!(messages);
    }

    private void DropTls(int at)
    {
        _tls[at].Dispose();
        _tls.RemoveAt(at);
        _polled = false; // the socket may be in the last poll's list
        _readable.Clear();
    }

    private void Drop(int at)
    {
        _inbound[at].Socket.Dispose();
        _inbound.RemoveAt(at);
        _polled = false; // the socket may be in the last poll's list
        _readable.Clear();
    }

    /// <summary>Closes the connections silent for <see cref="IdleTimeout"/> (checked about once a second).</summary>
    private void CloseIdle(long now)
    {
        if (now < _nextIdleSweep) return;
        _nextIdleSweep = now + Math.Min(Stopwatch.Frequency, _idleTicks / 4 + 1);
        for (var i = _inbound.Count - 1; i >= 0; i--)
        {
            if (now - _inbound[i].LastHeard < _idleTicks) continue;
            _logger.LogDebug("Closed the connection of node {Peer} from {Remote}: nothing arrived on it for {Ms} ms",
                _inbound[i].PeerId, Remote(_inbound[i].Socket), (long)IdleTimeout.TotalMilliseconds);
            Drop(i);
        }
        for (var i = _tls.Count - 1; i >= 0; i--)
        {
            if (now - _tls[i].LastHeard < _idleTicks) continue;
            _logger.LogDebug("Closed the TLS connection of node {Peer} from {Remote}: nothing arrived on it for {Ms} ms",
                _tls[i].PeerId, _tls[i].Remote, (long)IdleTimeout.TotalMilliseconds);
            DropTls(i);
        }
    }

    private static string RemoteAddress(Socket socket)
    {
        try
        {
            return socket.RemoteEndPoint is IPEndPoint ip ? ip.Address.ToString() : "?";
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return "?";
        }
    }

    private static string Remote(Socket socket)
    {
        try
        {
            return socket.RemoteEndPoint?.ToString() ?? "?";
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return "?";
        }
    }

    public void Wake() => _wakeup.Wake();

    public bool Spin(Func<bool> hasWork)
    {
        var now = Stopwatch.GetTimestamp();
        if (now - _busyWindowStart >= BusyWindowTicks)
        {
            _busy = _waitsInWindow >= BusyWaitsPerWindow;
            _busyWindowStart = now;
            _waitsInWindow = 0;
        }
        _waitsInWindow++;
        var spins = _busy || _waitsInWindow >= BusyWaitsPerWindow ? Spins : 0;
        var spinUntil = now + SpinMaxTicks;
        for (var i = 0; i < spins && Stopwatch.GetTimestamp() < spinUntil; i++)
        {
            if (hasWork() || _tlsToStart) return true;
            FillReadable(withWakeSocket: false);
            if (_readable.Count > 0)
            {
                Socket.Select(_readable, null, null, 0);
                if (_readable.Count > 0)
                {
                    _polled = true;
                    return true;
                }
            }
            if (i % 4 == 3) Thread.Yield();
            else Thread.SpinWait(20);
        }
        return false;
    }

    public void Sleep(int timeoutMs)
    {
        if (_tlsToStart) return; // ReadAvailable takes the new connection over now
        FillReadable(withWakeSocket: true);
        Socket.Select(_readable, null, null, timeoutMs >= int.MaxValue / 1000 ? -1 : timeoutMs * 1000);
        _polled = true;
    }

    private void FillReadable(bool withWakeSocket)
    {
        _readable.Clear();
        if (withWakeSocket) _readable.Add(_wakeup.Socket);
        foreach (var p in _inbound) _readable.Add(p.Socket);
        foreach (var t in _tls) _readable.Add(t.Socket);
    }

    public void ReadAvailable(Action<List<Message>> deliver)
    {
        if (_inbound.Count > 0 || _tls.Count > 0) CloseIdle(Stopwatch.GetTimestamp());
        _deliver = deliver;
        if (_tlsToStart) StartTls();
        if (!_polled)
        {
            if (_inbound.Count == 0 && _tls.Count == 0) return;
            FillReadable(withWakeSocket: false);
            Socket.Select(_readable, null, null, 0);
        }
        _polled = false;
        foreach (var socket in _readable)
        {
            if (socket == _wakeup.Socket)
            {
                _wakeup.Drain();
                continue;
            }
            var at = IndexOf(socket); // a loop, not List.Find: no closure per read on this path
            if (at >= 0)
            {
                if (!Read(_inbound[at]))
                {
                    _inbound[at].Socket.Dispose();
                    _inbound.RemoveAt(at);
                }
                continue;
            }
            at = IndexOfTls(socket);
            if (at >= 0 && !ReadTls(_tls[at]))
            {
                _tls[at].Dispose();
                _tls.RemoveAt(at);
            }
        }
        _readable.Clear();
    }

    /// <summary>Takes over the TLS connections added since the last read: what came with their hellos is delivered.</summary>
    private void StartTls()
    {
        _tlsToStart = false;
        for (var i = _tls.Count - 1; i >= 0; i--)
            if (!_tls[i].Started && !ReadTls(_tls[i])) DropTls(i);
    }

    private int IndexOf(Socket socket)
    {
        for (var i = 0; i < _inbound.Count; i++)
            if (_inbound[i].Socket == socket) return i;
        return -1;
    }

    private int IndexOfTls(Socket socket)
    {
        for (var i = 0; i < _tls.Count; i++)
            if (_tls[i].Socket == socket) return i;
        return -1;
    }

    /// <summary>False when the TLS connection ended or must be closed (a malformed frame, a record that does not decrypt).</summary>
    private bool ReadTls(TlsPeerConnection connection)
    {
        try
        {
            _readingTls = connection;
            return connection.Pump(_deliverTlsBatch);
        }
        catch (InvalidDataException e)
        {
            _logger.LogWarning("Closed a peer TLS connection from {Remote} (node {Peer}): {Error}", connection.Remote, connection.PeerId, e.Message);
            return false;
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            return false; // the peer went away (it reconnects)
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Not expected: said, and only this connection pays for it (the peer reconnects); the loop goes on.
            _logger.LogError("Reading the peer TLS connection from {Remote} (node {Peer}) failed: {Error}", connection.Remote, connection.PeerId, e);
            return false;
        }
        finally
        {
            _readingTls = null;
        }
    }

    /// <summary>False when the connection ended or must be closed (a malformed frame).</summary>
    private bool Read(InboundPeer peer)
    {
        try
        {
            _reading = peer;
            if (!peer.Reader.Receive(peer.Socket, _deliverBatch)) return false;
            peer.LastHeard = Stopwatch.GetTimestamp();
            if (peer.Reader.PingReceived)
            {
                peer.Reader.PingReceived = false;
                // One acknowledgement for the pings of this read (the sender has one out at a time).
                // Not sent when the socket's buffer is full: that peer reads nothing, so it will time out.
                peer.Socket.Send(PeerWire.Ping, SocketFlags.None, out _);
            }
            return true;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.WouldBlock)
        {
            return true; // nothing to read after all
        }
        catch (InvalidDataException e)
        {
            _logger.LogWarning("Closed a peer connection from {Remote}: {Error}", peer.Socket.RemoteEndPoint, e.Message);
            return false;
        }
        catch (SocketException)
        {
            return false; // the peer went away; it reconnects
        }
        finally
        {
            _reading = null;
        }
    }

    public void CloseAll()
    {
        foreach (var p in _inbound) p.Socket.Dispose();
        _inbound.Clear();
        foreach (var t in _tls) t.Dispose();
        _tls.Clear();
        _tlsToStart = false;
        _readable.Clear();
        _polled = false;
    }

    public void Dispose()
    {
        CloseAll();
        _wakeup.Dispose();
    }
}
