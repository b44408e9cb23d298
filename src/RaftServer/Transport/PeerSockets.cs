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
    void Add(Socket socket);
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

    private sealed class InboundPeer(Socket socket)
    {
        public Socket Socket { get; } = socket;
        public PeerFrameReader Reader { get; } = new();
        /// <summary>The member that sent on this connection, once it has (-1 before).</summary>
        public int PeerId { get; set; } = -1;
    }

    private readonly Membership _membership;
    private readonly ILogger _logger;
    private readonly List<InboundPeer> _inbound = new();
    private readonly List<Socket> _readable = new();
    private readonly Socket _wakeReceiver;
    private readonly Socket _wakeSender;
    private static readonly byte[] WakeByte = [1];
    private readonly byte[] _drain = new byte[64];
    /// <summary>The last wait filled <see cref="_readable"/> with the sockets that are readable.</summary>
    private bool _polled;
    private Action<List<Message>>? _deliver;
    private readonly Action<P.MessageBatch> _deliverBatch;
    /// <summary>The connection being read (for <see cref="_deliverBatch"/>).</summary>
    private InboundPeer? _reading;
    /// <summary>Older connections of a peer that has opened a newer one: closed after the reads of the turn.</summary>
    private readonly List<InboundPeer> _superseded = new();

    public PeerSockets(Membership membership, ILogger logger)
    {
        _membership = membership;
        _logger = logger;
        _deliverBatch = batch =>
        {
            if (PeerInbox.ToMessages(_membership, batch) is not { } messages) return;
            if (_reading is { } peer && peer.PeerId != batch.From) Identify(peer, batch.From);
            _deliver!(messages);
        };
        // A datagram socket on loopback that Sleep polls with the peers, for Wake to write to.
        _wakeReceiver = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        _wakeReceiver.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _wakeSender = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        _wakeSender.Connect(_wakeReceiver.LocalEndPoint!);
    }

    public bool HasConnections => _inbound.Count > 0;

    /// <summary>
    /// A peer's new connection. Non-blocking: the loop only reads what poll() said is there, and the
    /// acknowledgement of a ping must never block it (a peer that does not read them gets none).
    /// </summary>
    public void Add(Socket socket)
    {
        socket.Blocking = false;
        _inbound.Add(new InboundPeer(socket));
    }

    /// <summary>
    /// A peer keeps one connection to this node: when it has opened a new one, an older one is dead
    /// (its end closed it without our hearing: a partition drops the FIN too), so it is closed.
    /// </summary>
    private void Identify(InboundPeer peer, int id)
    {
        peer.PeerId = id;
        foreach (var other in _inbound)
            if (other != peer && other.PeerId == id) _superseded.Add(other);
    }

    public void Wake()
    {
        try
        {
            _wakeSender.Send(WakeByte);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // stopping (the sockets are closed); a full buffer means a wake-up is already pending
        }
    }

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
            if (hasWork()) return true;
            FillReadable(withWakeSocket: false);
            Socket.Select(_readable, null, null, 0);
            if (_readable.Count > 0)
            {
                _polled = true;
                return true;
            }
            if (i % 4 == 3) Thread.Yield();
            else Thread.SpinWait(20);
        }
        return false;
    }

    public void Sleep(int timeoutMs)
    {
        FillReadable(withWakeSocket: true);
        Socket.Select(_readable, null, null, timeoutMs >= int.MaxValue / 1000 ? -1 : timeoutMs * 1000);
        _polled = true;
    }

    private void FillReadable(bool withWakeSocket)
    {
        _readable.Clear();
        if (withWakeSocket) _readable.Add(_wakeReceiver);
        foreach (var p in _inbound) _readable.Add(p.Socket);
    }

    public void ReadAvailable(Action<List<Message>> deliver)
    {
        if (!_polled)
        {
            if (_inbound.Count == 0) return;
            FillReadable(withWakeSocket: false);
            Socket.Select(_readable, null, null, 0);
        }
        _polled = false;
        _deliver = deliver;
        foreach (var socket in _readable)
        {
            if (socket == _wakeReceiver)
            {
                while (_wakeReceiver.Available > 0) _wakeReceiver.Receive(_drain);
                continue;
            }
            var at = IndexOf(socket); // a loop, not List.Find: no closure per read on this path
            if (at >= 0 && !Read(_inbound[at]))
            {
                _inbound[at].Socket.Dispose();
                _inbound.RemoveAt(at);
            }
        }
        _readable.Clear();
        if (_superseded.Count > 0)
        {
            foreach (var old in _superseded)
                if (_inbound.Remove(old)) old.Socket.Dispose();
            _superseded.Clear();
        }
    }

    private int IndexOf(Socket socket)
    {
        for (var i = 0; i < _inbound.Count; i++)
            if (_inbound[i].Socket == socket) return i;
        return -1;
    }

    /// <summary>False when the connection ended or must be closed (a malformed frame).</summary>
    private bool Read(InboundPeer peer)
    {
        try
        {
            _reading = peer;
            if (!peer.Reader.Receive(peer.Socket, _deliverBatch)) return false;
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
        _readable.Clear();
        _polled = false;
    }

    public void Dispose()
    {
        CloseAll();
        _wakeReceiver.Dispose();
        _wakeSender.Dispose();
    }
}
