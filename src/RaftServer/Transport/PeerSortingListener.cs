using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging;

namespace RaftServer.Transport;

/// <summary>
/// Kestrel's transport for the node's one port (registered in place of Kestrel's socket transport).
/// Each accepted connection is sorted by its first byte. A peer's message stream (it opens with
/// <see cref="PeerWire.Preface"/> and a hello, <see cref="PeerHandshake"/>) is answered with this
/// node's hello and handed, as a plain socket, with the member id it gave, to <c>acceptPeer</c>:
/// the node loop reads it itself (Transport/PeerSockets.cs). Anything else (HTTP/2: the client
/// service, snapshots) becomes a Kestrel connection, made by Kestrel's own socket connection
/// factory. While <c>refuse</c> says so (the node is suspended) peer connections are closed at once.
/// A wrong preface or hello, or a peer of another cluster, closes the connection with a warning.
/// With client TLS on, Kestrel also binds a <see cref="TlsSideEndPoint"/> of the port (after the
/// port itself): connections that open with a TLS handshake record go there, to Kestrel's HTTPS
/// middleware. With peer TLS (<paramref name="acceptTlsPeer"/> given and the handshake's
/// <see cref="PeerHandshake.Tls"/> set) a connection that opens with <see cref="PeerWire.TlsPreface"/>
/// goes to a <see cref="PeerTlsAcceptor"/>, and a plain peer preface is refused; without it, a TLS
/// preface is refused. Either refusal is answered so that the other side can say what is wrong.
/// </summary>
/// <param name="retransmitFloor">Set on the listening socket, so every accepted connection has it (<see cref="TcpRetransmitFloor"/>).</param>
public sealed class PeerSortingListenerFactory(Func<bool> refuse, Action<Socket, int> acceptPeer, PeerHandshake handshake, ILogger logger, ILogger socketsLogger,
    Action<TlsPeerConnection, int>? acceptTlsPeer = null, TimeSpan? retransmitFloor = null)
    : IConnectionListenerFactory
{
    private readonly Dictionary<EndPoint, PeerSortingListener> _bound = new();

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        if (endpoint is TlsSideEndPoint side)
        {
            lock (_bound)
            {
                if (!_bound.TryGetValue(side.Port, out var port))
                    throw new InvalidOperationException($"the TLS side of {side.Port} is bound before the port itself");
                return new(port.TlsSide(side));
            }
        }
        if (endpoint is PeerTlsSideEndPoint peerSide)
        {
            lock (_bound)
            {
                if (!_bound.TryGetValue(peerSide.Port, out var port))
                    throw new InvalidOperationException($"the peer TLS side of {peerSide.Port} is bound before the port itself");
                return new(port.PeerTlsSide(peerSide));
            }
        }
        Socket socket;
        try
        {
            socket = SocketTransportOptions.CreateDefaultBoundListenSocket(endpoint);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            // Kestrel reports this one as "address already in use" (ServerHost: "the port is already in use").
            throw new AddressInUseException(e.Message, e);
        }
        if (retransmitFloor is { } floor) TcpRetransmitFloor.Apply(socket, floor, logger);
        socket.Listen(512);
        var contexts = new SocketConnectionContextFactory(new SocketConnectionFactoryOptions(), socketsLogger);
        var listener = new PeerSortingListener(socket, contexts, refuse, acceptPeer, handshake, logger, acceptTlsPeer);
        lock (_bound) _bound[endpoint] = listener;
        return new(listener);
    }
}

/// <summary>The TLS side of a node's port (see <see cref="PeerSortingListenerFactory"/>): an endpoint for Kestrel, not a socket of its own.</summary>
public sealed class TlsSideEndPoint(IPEndPoint port) : EndPoint
{
    public IPEndPoint Port { get; } = port;
    public override string ToString() => $"{Port} (TLS)";
}

/// <summary>
/// The peers' HTTP/2 connections over peer TLS on a node's port (see <see cref="PeerTlsAcceptor"/>): an
/// endpoint of their own for Kestrel, so that Kestrel's connection limit, --max-client-connections,
/// counts clients only (it counts per endpoint), and peers have their own bound (<see cref="PeerHttpConnections"/>).
/// </summary>
public sealed class PeerTlsSideEndPoint(IPEndPoint port) : EndPoint
{
    public IPEndPoint Port { get; } = port;
    public override string ToString() => $"{Port} (peer TLS)";
}

/// <summary>
/// Sorting without a thread per connection: one thread ("raft-sort") polls every connection that
/// has not said what it is yet (<see cref="Socket.Select"/>, non-blocking reads), so a peer's socket
/// is never registered with the runtime's socket event engine (the node loop polls and reads it
/// itself) and a flood of silent connections costs a socket each, not a thread each. At most
/// <see cref="MaxPending"/> wait (the oldest is closed to make room for a new one), each for at most
/// <see cref="SortTimeout"/>.
/// </summary>
internal sealed class PeerSortingListener : IConnectionListener
{
    /// <summary>A connection that has not said what it is (its first byte, or a peer's preface and hello) within this is closed.</summary>
    public static readonly TimeSpan SortTimeout = TimeSpan.FromSeconds(5);
    /// <summary>Connections waiting to be sorted; past this the oldest is closed. Peers and clients send
    /// their first bytes at once, so only silent (idle or hostile) connections wait long.</summary>
    public const int MaxPending = 1024;
    /// <summary>A refused peer's connection stays open this long after the answer (or until the peer
    /// closes it), so the answer reaches it before the close: it says which cluster this node is.</summary>
    private static readonly TimeSpan RefusalLinger = TimeSpan.FromSeconds(1);

    private const int HeadBytes = 14 + PeerWire.HeaderBytes; // the preface and the hello's length
    private static int PrefaceBytes => PeerWire.Preface.Length;

    private sealed class Pending(Socket socket, long deadline)
    {
        public Socket Socket { get; } = socket;
        public long Deadline { get; set; } = deadline;
        public byte[] Head { get; } = new byte[HeadBytes + PeerWire.MaxHelloBytes];
        public int Got { get; set; }
        public int Need { get; set; }
        /// <summary>Refused: waiting for the peer to close after reading this node's answer.</summary>
        public bool Closing { get; set; }
        public bool Done { get; set; }
    }

    private readonly Socket _listen;
    private readonly SocketConnectionContextFactory _contexts;
    private readonly Func<bool> _refuse;
    private readonly Action<Socket, int> _acceptPeer;
    private readonly PeerHandshake _handshake;
    /// <summary>Peer TLS on: TLS prefaces are accepted here, plain ones refused.</summary>
    private readonly PeerTlsAcceptor? _tlsPeers;
    private readonly ILogger _logger;
    private readonly Channel<ConnectionContext> _http = Channel.CreateUnbounded<ConnectionContext>();
    /// <summary>Connections that open with a TLS record, once a TLS side is bound; else they go to <see cref="_http"/> (and fail there).</summary>
    private volatile Channel<ConnectionContext>? _tls;
    /// <summary>Peers' HTTP/2 connections over peer TLS, once their side is bound; else they go to <see cref="_http"/>.</summary>
    private volatile Channel<ConnectionContext>? _peerHttp;
    /// <summary>The first byte of a TLS connection: a handshake record (the ClientHello).</summary>
    private const byte TlsHandshakeRecord = 0x16;
    private readonly Task _accepting;
    private readonly Thread _sorter;
    private readonly ConcurrentQueue<Socket> _incoming = new();
    private readonly List<Pending> _pending = new();
    private readonly Dictionary<Socket, Pending> _bySocket = new();
    private readonly List<Socket> _check = new();
    private readonly PollWakeup _wakeup = new();
    private readonly byte[] _drain = new byte[256];
    private readonly LogLimiter _limiter = new(TimeSpan.FromMinutes(1));
    private volatile bool _unbound;
    /// <summary>Connections closed over the cap since the last line that said so.</summary>
    private long _closedOverCap;

    public PeerSortingListener(Socket listen, SocketConnectionContextFactory contexts, Func<bool> refuse, Action<Socket, int> acceptPeer,
        PeerHandshake handshake, ILogger logger, Action<TlsPeerConnection, int>? acceptTlsPeer = null)
    {
        // Decided by the handshake's TLS alone, so that a node with peer TLS can never take plain peers.
        if (handshake.Tls is { } peerTls)
            _tlsPeers = new PeerTlsAcceptor(peerTls, handshake, refuse,
                acceptTlsPeer ?? throw new ArgumentNullException(nameof(acceptTlsPeer), "peer TLS needs a callback for TLS peer connections"),
                c => (_peerHttp ?? _http).Writer.TryWrite(c));
        _listen = listen;
        _contexts = contexts;
        _refuse = refuse;
        _acceptPeer = acceptPeer;
        _handshake = handshake;
        _logger = logger;
        EndPoint = listen.LocalEndPoint!;
        _sorter = new Thread(SortLoop) { IsBackground = true, Name = "raft-sort" };
        _sorter.Start();
        _accepting = Task.Run(AcceptLoopAsync);
    }

    public EndPoint EndPoint { get; }

    /// <summary>Connections waiting to be sorted now (for tests and metrics; read from any thread, approximate).</summary>
    public int PendingCount => Volatile.Read(ref _pendingCount);
    private int _pendingCount;

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                Socket socket;
                try
                {
                    socket = await _listen.AcceptAsync();
                }
                catch (SocketException e) when (!_unbound)
                {
                    // One connection that failed as it was accepted (reset, or out of descriptors): not the port's end.
                    if (e.SocketErrorCode == SocketError.ConnectionReset) continue;
                    if (_limiter.Allow("accept " + e.SocketErrorCode, out var held))
                        _logger.LogWarning("Could not accept a connection: {Error}{Held}", e.Message, held > 0 ? $" ({held} more in the last minute)" : "");
                    // Out of descriptors: the connection waits in the backlog and the next accept would
                    // fail at once again; give the sorter a moment to close silent connections.
                    if (e.SocketErrorCode == SocketError.TooManyOpenSockets) await Task.Delay(50);
                    continue;
                }
                _incoming.Enqueue(socket);
                Wake();
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // the listening socket was closed: Kestrel unbound it (stopping)
        }
        finally
        {
            _http.Writer.TryComplete();
            _tls?.Writer.TryComplete();
            _peerHttp?.Writer.TryComplete();
            Wake();
        }
    }

    /// <summary>The listener Kestrel binds for the TLS side of this port.</summary>
    internal IConnectionListener TlsSide(TlsSideEndPoint endpoint)
    {
        var channel = _tls ??= Channel.CreateUnbounded<ConnectionContext>();
        return new SideListener(endpoint, channel);
    }

    /// <summary>The listener Kestrel binds for the peers' HTTP/2 connections over peer TLS.</summary>
    internal IConnectionListener PeerTlsSide(PeerTlsSideEndPoint endpoint)
    {
        var channel = _peerHttp ??= Channel.CreateUnbounded<ConnectionContext>();
        return new SideListener(endpoint, channel);
    }

    /// <summary>The peers' HTTP/2 connections held now (null without peer TLS).</summary>
    internal PeerHttpConnections? PeerHttpConnections => _tlsPeers?.HttpConnections;

    /// <summary>Hands Kestrel the connections sorted into a channel; the port's own listener owns the socket.</summary>
    private sealed class SideListener(EndPoint endpoint, Channel<ConnectionContext> channel) : IConnectionListener
    {
        public EndPoint EndPoint => endpoint;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            try
            {
                return await channel.Reader.ReadAsync(cancellationToken);
            }
            catch (ChannelClosedException)
            {
                return null;
            }
        }

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
        {
            channel.Writer.TryComplete();
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync()
        {
            channel.Writer.TryComplete();
            return ValueTask.CompletedTask;
        }
    }

    private void Wake() => _wakeup.Wake();

    private void SortLoop()
    {
        try
        {
            while (!_unbound)
            {
                var now = Stopwatch.GetTimestamp();
                TakeIncoming(now);
                _check.Clear();
                _check.Add(_wakeup.Socket);
                var next = now + Stopwatch.Frequency; // at least once a second
                foreach (var p in _pending)
                {
                    _check.Add(p.Socket);
                    if (p.Deadline < next) next = p.Deadline;
                }
                var waitUs = Math.Clamp((next - now) * 1_000_000 / Stopwatch.Frequency, 1_000, 1_000_000);
                Socket.Select(_check, null, null, (int)waitUs);
                foreach (var socket in _check)
                {
                    if (socket == _wakeup.Socket)
                    {
                        _wakeup.Drain();
                        continue;
                    }
                    if (_bySocket.TryGetValue(socket, out var p)) Step(p);
                }
                now = Stopwatch.GetTimestamp();
                foreach (var p in _pending)
                    if (!p.Done && p.Deadline <= now) Close(p); // silent for the sort timeout, or a refused peer that lingered
                Sweep();
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            if (!_unbound) _logger.LogError("The connection sorter stopped: {Error}", e.Message);
        }
        finally
        {
            foreach (var p in _pending) p.Socket.Dispose();
            _pending.Clear();
            _bySocket.Clear();
            while (_incoming.TryDequeue(out var s)) s.Dispose();
            Volatile.Write(ref _pendingCount, 0);
        }
    }

    private void TakeIncoming(long now)
    {
        var deadline = now + (long)(SortTimeout.TotalSeconds * Stopwatch.Frequency);
        while (_incoming.TryDequeue(out var socket))
        {
            try
            {
                socket.Blocking = false;
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                socket.Dispose();
                continue;
            }
            var p = new Pending(socket, deadline);
            _pending.Add(p);
            _bySocket[socket] = p;
        }
        var excess = _pending.Count - MaxPending;
        if (excess > 0)
        {
            for (var i = 0; i < excess; i++) Close(_pending[i]);
            _closedOverCap += excess;
            if (_limiter.Allow("cap", out _))
            {
                _logger.LogWarning("Closed {Count} connections that had not said what they are: more than {Max} were waiting",
                    _closedOverCap, MaxPending);
                _closedOverCap = 0;
            }
            Sweep();
        }
        Volatile.Write(ref _pendingCount, _pending.Count);
    }

    private void Sweep()
    {
        var removed = _pending.RemoveAll(p =>
        {
            if (p.Done) _bySocket.Remove(p.Socket);
            return p.Done;
        });
        if (removed > 0) Volatile.Write(ref _pendingCount, _pending.Count);
    }

    private static void Close(Pending p)
    {
        p.Done = true;
        p.Socket.Dispose();
    }

    /// <summary>One step of a connection's sorting, with what has arrived (never blocks).</summary>
    private void Step(Pending p)
    {
        var socket = p.Socket;
        try
        {
            if (p.Closing)
            {
                // Refused: discard what it sends until it closes (or the linger ends).
                var r = socket.Receive(_drain, 0, _drain.Length, SocketFlags.None, out var drainError);
                if (drainError != SocketError.WouldBlock && (drainError != SocketError.Success || r == 0)) Close(p);
                return;
            }
            if (p.Need == 0)
            {
                var n = socket.Receive(p.Head, 0, 1, SocketFlags.Peek, out var peekError);
                if (peekError == SocketError.WouldBlock) return;
                if (peekError != SocketError.Success || n == 0) { Close(p); return; }
                if (p.Head[0] != PeerWire.Preface[0])
                {
                    p.Done = true;
                    socket.Blocking = true;
                    socket.NoDelay = true; // as Kestrel's own listener sets on every accepted socket
                    var to = p.Head[0] == TlsHandshakeRecord && _tls is { } tls ? tls : _http;
                    if (!to.Writer.TryWrite(_contexts.Create(socket))) socket.Dispose();
                    return;
                }
                p.Need = PrefaceBytes;
            }
            while (p.Got < p.Need)
            {
                // Exactly the bytes of the preface and the hello: what follows is the node loop's to read.
                var n = socket.Receive(p.Head, p.Got, p.Need - p.Got, SocketFlags.None, out var error);
                if (error == SocketError.WouldBlock) return;
                if (error != SocketError.Success || n == 0) { Close(p); return; }
                p.Got += n;
                if (p.Got == PrefaceBytes && p.Need == PrefaceBytes)
                {
                    if (!CheckPreface(p)) return;
                    if (_tlsPeers is not null && p.Head.AsSpan(0, PrefaceBytes).SequenceEqual(PeerWire.TlsPreface))
                    {
                        p.Done = true;
                        socket.Blocking = true;
                        socket.NoDelay = true;
                        _tlsPeers.Accept(socket);
                        return;
                    }
                    p.Need = HeadBytes;
                }
                if (p.Got == HeadBytes && p.Need == HeadBytes)
                    p.Need += PeerWire.HelloLength(p.Head.AsSpan(PeerWire.Preface.Length, PeerWire.HeaderBytes));
            }
            var hello = PeerWire.ParseHello(p.Head.AsSpan(HeadBytes, p.Need - HeadBytes));
            // This node's answer first, in every case: a refused peer learns which cluster this is
            // and whether it was removed.
            var answer = _handshake.AnswerTo(hello);
            if (!_handshake.Admit(hello, socket.RemoteEndPoint))
            {
                RefuseWith(p, answer);
                return;
            }
            var sent = socket.Send(answer, 0, answer.Length, SocketFlags.None, out var sendError);
            if (sendError != SocketError.Success || sent != answer.Length) { Close(p); return; }
            p.Done = true;
            if (_refuse()) { socket.Dispose(); return; }
            socket.NoDelay = true;
            socket.Blocking = true; // as accepted; the node loop makes it non-blocking for itself
            _acceptPeer(socket, hello.NodeId);
        }
        catch (InvalidDataException e)
        {
            _handshake.Warn($"bad {Remote(socket)}", "Closed a peer connection from {Remote}: {Error}", Remote(socket), e.Message);
            Close(p);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            Close(p); // reset or closed before it said what it is
        }
    }

    /// <summary>Sends <paramref name="answer"/>, then waits for the peer to close (or the linger to end): it reads the answer first.</summary>
    private static void RefuseWith(Pending p, ReadOnlySpan<byte> answer)
    {
        var sent = p.Socket.Send(answer, SocketFlags.None, out var sendError);
        if (sendError != SocketError.Success || sent != answer.Length) { Close(p); return; }
        p.Socket.Shutdown(SocketShutdown.Send);
        p.Closing = true;
        p.Deadline = Stopwatch.GetTimestamp() + (long)(RefusalLinger.TotalSeconds * Stopwatch.Frequency);
    }

    /// <summary>Whether the preface lets the connection go on (false: refused or closed, and said so).</summary>
    private bool CheckPreface(Pending p)
    {
        var preface = p.Head.AsSpan(0, PeerWire.Preface.Length);
        var remote = Remote(p.Socket);
        if (preface.SequenceEqual(PeerWire.Preface))
        {
            if (_tlsPeers is null) return true;
            // The plain peer reads this answer as a TLS node's and says so in its own log.
            _handshake.Warn($"plain {remote}", "Refused a peer connection from {Remote}: it speaks plain text, and this node requires peer TLS " +
                "(--peer-cert-file); give every node of the cluster the peer TLS options, or none of them", remote);
            RefuseWith(p, PeerWire.TlsPreface);
            return false;
        }
        if (preface.SequenceEqual(PeerWire.TlsPreface))
        {
            if (_tlsPeers is not null) return true;
            // Answered with this node's plain hello: the TLS peer reads it as a plain node's and says so.
            _handshake.Warn($"tls {remote}", "Refused a peer connection from {Remote}: it uses peer TLS, and this node does not (no --peer-cert-file); " +
                "give every node of the cluster the peer TLS options, or none of them", remote);
            RefuseWith(p, _handshake.LocalHello());
            return false;
        }
        if (preface.SequenceEqual(PeerWire.PrefaceVersion1))
            _handshake.Warn($"v1 {remote}", "Closed a peer connection from {Remote}: it speaks the peer protocol of an older RaftPS (no cluster identity); upgrade that node", remote);
        else
            _handshake.Warn($"preface {remote}", "Closed a peer connection from {Remote}: not a RaftPS peer preface", remote);
        Close(p);
        return false;
    }

    private static string Remote(Socket socket)
    {
        try
        {
            return (socket.RemoteEndPoint as IPEndPoint)?.Address.ToString() ?? "?";
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return "?";
        }
    }

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            return await _http.Reader.ReadAsync(cancellationToken);
        }
        catch (ChannelClosedException)
        {
            return null;
        }
    }

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        _unbound = true;
        _listen.Dispose();
        Wake();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        _unbound = true;
        _listen.Dispose();
        Wake();
        await _accepting;
        _sorter.Join(TimeSpan.FromSeconds(5));
        _tlsPeers?.Dispose();
        _wakeup.Dispose();
        _contexts.Dispose();
    }
}
