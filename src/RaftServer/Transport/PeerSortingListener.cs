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
/// <see cref="PeerWire.Preface"/>) is handed, preface read, as a plain socket to <c>acceptPeer</c>:
/// the node loop reads it itself (NodeLoop.PeerSockets.cs). Anything else (HTTP/2: the client
/// service, snapshots) becomes a Kestrel connection, made by Kestrel's own socket connection
/// factory. While <c>refuse</c> says so (the node is suspended) peer connections are closed at once.
/// A wrong preface closes the connection with a warning. With client TLS on, Kestrel also binds a
/// <see cref="TlsSideEndPoint"/> of the port (after the port itself): connections that open with a
/// TLS handshake record go there, to Kestrel's HTTPS middleware.
/// </summary>
public sealed class PeerSortingListenerFactory(Func<bool> refuse, Action<Socket> acceptPeer, ILogger logger, ILogger socketsLogger) : IConnectionListenerFactory
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
        socket.Listen(512);
        var contexts = new SocketConnectionContextFactory(new SocketConnectionFactoryOptions(), socketsLogger);
        var listener = new PeerSortingListener(socket, contexts, refuse, acceptPeer, logger);
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

internal sealed class PeerSortingListener : IConnectionListener
{
    /// <summary>A connection that sends nothing for this long after it opens is closed.</summary>
    private static readonly TimeSpan SortTimeout = TimeSpan.FromSeconds(10);
    private readonly Socket _listen;
    private readonly SocketConnectionContextFactory _contexts;
    private readonly Func<bool> _refuse;
    private readonly Action<Socket> _acceptPeer;
    private readonly ILogger _logger;
    private readonly Channel<ConnectionContext> _http = Channel.CreateUnbounded<ConnectionContext>();
    /// <summary>Connections that open with a TLS record, once a TLS side is bound; else they go to <see cref="_http"/> (and fail there).</summary>
    private volatile Channel<ConnectionContext>? _tls;
    /// <summary>The first byte of a TLS connection: a handshake record (the ClientHello).</summary>
    private const byte TlsHandshakeRecord = 0x16;
    private readonly Task _accepting;
    private volatile bool _unbound;

    public PeerSortingListener(Socket listen, SocketConnectionContextFactory contexts, Func<bool> refuse, Action<Socket> acceptPeer, ILogger logger)
    {
        _listen = listen;
        _contexts = contexts;
        _refuse = refuse;
        _acceptPeer = acceptPeer;
        _logger = logger;
        EndPoint = listen.LocalEndPoint!;
        _accepting = Task.Run(AcceptLoopAsync);
    }

    public EndPoint EndPoint { get; }

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
                    if (e.SocketErrorCode != SocketError.ConnectionReset)
                        _logger.LogWarning("Could not accept a connection: {Error}", e.Message);
                    continue;
                }
                // A thread of its own, for the few milliseconds until the first bytes come: the sort
                // reads synchronously, so a peer's socket is never registered with the runtime's
                // socket event thread (the node loop polls and reads it itself).
                new Thread(() => Sort(socket)) { IsBackground = true, Name = "raft-sort" }.Start();
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
        }
    }

    /// <summary>The listener Kestrel binds for the TLS side of this port.</summary>
    internal IConnectionListener TlsSide(TlsSideEndPoint endpoint)
    {
        var channel = _tls ??= Channel.CreateUnbounded<ConnectionContext>();
        return new SideListener(endpoint, channel);
    }

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

    private void Sort(Socket socket)
    {
        try
        {
            socket.ReceiveTimeout = (int)SortTimeout.TotalMilliseconds;
            var head = new byte[PeerWire.Preface.Length];
            var n = socket.Receive(head, 0, 1, SocketFlags.Peek);
            if (n == 0) { socket.Dispose(); return; }
            if (head[0] != PeerWire.Preface[0])
            {
                socket.ReceiveTimeout = 0;
                socket.NoDelay = true; // as Kestrel's own listener sets on every accepted socket
                var to = head[0] == TlsHandshakeRecord && _tls is { } tls ? tls : _http;
                if (!to.Writer.TryWrite(_contexts.Create(socket))) socket.Dispose();
                return;
            }
            var got = 0;
            while (got < head.Length)
            {
                var r = socket.Receive(head, got, head.Length - got, SocketFlags.None);
                if (r == 0) { socket.Dispose(); return; }
                got += r;
            }
            if (!head.AsSpan().SequenceEqual(PeerWire.Preface))
            {
                _logger.LogWarning("Closed a peer connection from {Remote}: not a RaftPS peer preface", socket.RemoteEndPoint);
                socket.Dispose();
                return;
            }
            socket.ReceiveTimeout = 0;
            socket.NoDelay = true;
            if (_refuse()) { socket.Dispose(); return; }
            _acceptPeer(socket);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            socket.Dispose(); // closed, reset or silent for SortTimeout before it said what it is
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
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        _unbound = true;
        _listen.Dispose();
        await _accepting;
        _contexts.Dispose();
    }
}
