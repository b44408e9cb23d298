using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using RaftServer.Transport;
using P = RaftPS.Protocol;

namespace RaftServer.Hosting;

/// <summary>
/// The peers' message connections into this node are read by the loop thread itself. With nothing
/// to do, the loop polls those sockets for a short while, then sleeps in poll() on them and on a
/// wake-up socket that <see cref="Post"/> writes to. So a peer's batch (a follower's
/// acknowledgement of a read round, a leader's heartbeat) reaches the core with one thread wake-up
/// at most, instead of going through the socket event thread, a thread-pool worker and a wake-up
/// of the loop. A/B in docs/server.md ("Peer messages read by the loop").
/// </summary>
public sealed partial class NodeLoop
{
    /// <summary>
    /// Before it sleeps, the loop polls its peers' sockets without blocking up to this many times
    /// (yielding between polls), for at most <see cref="PollSpinMaxTicks"/>: an acknowledgement
    /// that comes within that time costs no wake-up of a sleeping thread. Measured: 600 gave get
    /// C=1 +44%, 200 about +15% (docs/server.md).
    /// </summary>
    private const int PollSpins = 600;
    private static readonly long PollSpinMaxTicks = Stopwatch.Frequency / 1000; // 1 ms

    /// <summary>
    /// The loop polls before it sleeps only while it is busy: it waited at least
    /// <see cref="BusyWaitsPerWindow"/> times in the last window of <see cref="BusyWindowTicks"/>
    /// (200 a second). An idle cluster (a heartbeat round per tick: a few waits a tick) does not
    /// spin, which keeps an idle node's CPU where it was without this (about 1.5% of a core).
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
    }

    private sealed record InboundPeerSocket(Socket Socket);

    private readonly List<InboundPeer> _inbound = new();
    private readonly List<Socket> _readable = new();
    private Socket? _wakeReceiver;
    private Socket? _wakeSender;
    private static readonly byte[] WakeByte = [1];
    private readonly byte[] _drain = new byte[64];
    /// <summary>The last wait filled <see cref="_readable"/> with the sockets that are readable.</summary>
    private bool _polled;
    private Action<P.MessageBatch>? _deliverBatch;

    /// <summary>Hands a peer's connection (its preface already read, never used asynchronously) to the loop.</summary>
    public void AcceptPeer(Socket socket) => Post(new InboundPeerSocket(socket));

    /// <summary>A datagram socket on loopback that the loop polls with its peers, for <see cref="Post"/> to wake it.</summary>
    private void OpenWakeSockets()
    {
        _deliverBatch = batch =>
        {
            if (PeerInbox.ToMessages(_config, _settings.Id, batch) is { } messages) Handle(messages);
        };
        _wakeReceiver = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        _wakeReceiver.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _wakeSender = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        _wakeSender.Connect(_wakeReceiver.LocalEndPoint!);
    }

    private void WakeFromPoll()
    {
        try
        {
            _wakeSender?.Send(WakeByte);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // stopping (the sockets are closed); a full buffer means a wake-up is already pending
        }
    }

    private void AddInbound(Socket socket)
    {
        if (_suspended || _stopping)
        {
            socket.Dispose();
            return;
        }
        _inbound.Add(new InboundPeer(socket));
    }

    /// <summary>Polls the peers' sockets a while, then sleeps in poll() until one is readable, <see cref="Post"/> wakes it, or the timeout.</summary>
    private void WaitOnSockets(int timeoutMs)
    {
        var now = Stopwatch.GetTimestamp();
        if (now - _busyWindowStart >= BusyWindowTicks)
        {
            _busy = _waitsInWindow >= BusyWaitsPerWindow;
            _busyWindowStart = now;
            _waitsInWindow = 0;
        }
        _waitsInWindow++;
        var spins = _busy || _waitsInWindow >= BusyWaitsPerWindow ? PollSpins : 0;
        var spinUntil = now + PollSpinMaxTicks;
        for (var i = 0; i < spins && Stopwatch.GetTimestamp() < spinUntil; i++)
        {
            if (!_queue.IsEmpty || _stopping) return;
            FillReadable(withWakeSocket: false);
            Socket.Select(_readable, null, null, 0);
            if (_readable.Count > 0)
            {
                _polled = true;
                return;
            }
            if (i % 4 == 3) Thread.Yield();
            else Thread.SpinWait(20);
        }
        Interlocked.Exchange(ref _sleeping, SleepingInPoll);
        if (_queue.IsEmpty && !_stopping)
        {
            FillReadable(withWakeSocket: true);
            Socket.Select(_readable, null, null, timeoutMs >= int.MaxValue / 1000 ? -1 : timeoutMs * 1000);
            _polled = true;
        }
        Interlocked.Exchange(ref _sleeping, Awake);
    }

    private void FillReadable(bool withWakeSocket)
    {
        _readable.Clear();
        if (withWakeSocket) _readable.Add(_wakeReceiver!);
        foreach (var p in _inbound) _readable.Add(p.Socket);
    }

    /// <summary>Reads what the peers sent (one read of each readable socket) and steps the core with it.</summary>
    private void ReadPeers()
    {
        if (!_polled)
        {
            if (_inbound.Count == 0) return;
            FillReadable(withWakeSocket: false);
            Socket.Select(_readable, null, null, 0);
        }
        _polled = false;
        foreach (var socket in _readable)
        {
            if (socket == _wakeReceiver)
            {
                while (_wakeReceiver.Available > 0) _wakeReceiver.Receive(_drain);
                continue;
            }
            var at = IndexOfInbound(socket); // a loop, not List.Find: no closure per read on this path
            if (at >= 0 && !ReadPeer(_inbound[at]))
            {
                _inbound[at].Socket.Dispose();
                _inbound.RemoveAt(at);
            }
        }
        _readable.Clear();
    }

    private int IndexOfInbound(Socket socket)
    {
        for (var i = 0; i < _inbound.Count; i++)
            if (_inbound[i].Socket == socket) return i;
        return -1;
    }

    /// <summary>False when the connection ended or must be closed (a malformed frame, or this node suspended).</summary>
    private bool ReadPeer(InboundPeer peer)
    {
        try
        {
            return peer.Reader.Receive(peer.Socket, _deliverBatch!) && !_suspended;
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
    }

    private void CloseInbound()
    {
        foreach (var p in _inbound) p.Socket.Dispose();
        _inbound.Clear();
    }

    private void CloseWakeSockets()
    {
        _wakeReceiver?.Dispose();
        _wakeSender?.Dispose();
    }
}
