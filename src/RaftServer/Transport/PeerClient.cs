using System.Diagnostics;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Threading.Channels;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using RaftServer.Cluster;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>
/// The link to one peer: one long-lived TCP connection carrying <see cref="P.MessageBatch"/>
/// frames (<see cref="PeerWire"/>), fed from a bounded queue so a slow or dead peer never blocks
/// the node loop. A broken connection is reopened with exponential backoff (50 ms to 500 ms);
/// batches queued meanwhile are dropped (Raft retransmits what matters). A gRPC channel (HTTP/2,
/// h2c) to the same port serves calls to the peer's client service (a follower forwarding writes
/// to the leader).
/// A connection that breaks is retried at once (and a few times more within 35 ms while the
/// attempts keep breaking: a dying process may still accept one), and a refused connection is reported
/// (<see cref="Refused"/>): that is how a follower learns within a round trip that its leader's
/// process was killed or stopped, instead of after an election timeout of silence.
/// A connection that goes silent (packets dropped on the way, either way: nothing is refused or
/// reset) is noticed by the link itself: at most one ping per <see cref="PeerLinkTimings.PingInterval"/>
/// rides on the traffic and the peer answers it on this connection (the only thing it ever sends
/// back on it); a ping unanswered for <see cref="PeerLinkTimings.AckTimeout"/> ends the connection,
/// and the gRPC channel, whose connection crosses the same silent path, is replaced too. Then new
/// attempts follow each other every <see cref="PeerLinkTimings.ConnectTimeout"/>, so the link is
/// back within about that once the path heals, rather than after the kernel's retransmission
/// back-off (seconds). A link with nothing to send pings every
/// <see cref="PeerLinkTimings.KeepAliveInterval"/>, so its peer does not close it as idle.
/// Each connection opens with the preface and this node's hello; the peer's hello comes back
/// first, and a peer of another cluster (or another node at the peer's address) ends the
/// connection with a line in the log (<see cref="PeerHandshake"/>) and a retry at the slowest
/// back-off.
/// </summary>
public sealed class PeerClient : IAsyncDisposable
{
    /// <summary>
    /// The pauses before the quick retries after a lost connection (the first at once). A killed
    /// process's kernel closes its connections a moment before its listening socket, so the first
    /// retry may still be accepted and then reset; the refusal, and so the hint, comes with one of
    /// the next ones (seen in the fail-over benchmark: the second attempt used to wait the 50 ms
    /// back-off, and a survivor that heard of the death that late refused the other's pre-vote).
    /// </summary>
    private static readonly TimeSpan[] QuickRetryPauses =
        [TimeSpan.Zero, TimeSpan.FromMilliseconds(5), TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(20)];
    /// <summary>The kernel's own limit on unacknowledged data (TCP_USER_TIMEOUT), a backstop to the pings.</summary>
    private static readonly TimeSpan DeadPeerTimeout = TimeSpan.FromSeconds(10);
    private readonly PeerLinkTimings _timings;
    /// <summary>Opens the connections of the channel of forwarded calls.</summary>
    private readonly PeerSocketConnector _connector;
    /// <summary>The frame being sent (only the runner task writes it).</summary>
    private byte[] _frame = new byte[64 << 10];

    // AllowSynchronousContinuations: the node loop's Send runs the waiting sender on the loop
    // thread, so a batch goes out with one socket write (non-blocking: a send the kernel cannot
    // take at once finishes on the thread pool) instead of a wake-up of a pool thread per batch per
    // peer.
    // Written by the node loop and by the keep-alive timer (KeepAlive batches).
    private readonly Channel<P.MessageBatch> _queue = Channel.CreateBounded<P.MessageBatch>(
        new BoundedChannelOptions(512)
        {
            FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true, SingleWriter = false, AllowSynchronousContinuations = true,
        });
    /// <summary>Queued by the keep-alive timer when the link has sent nothing for a while: sent as a ping.</summary>
    private static readonly P.MessageBatch KeepAlive = new();
    private readonly Timer _keepAliveTimer;
    /// <summary>When the last bytes went out (a Stopwatch timestamp).</summary>
    private long _lastSendAt;
    private readonly PeerHandshake _handshake;
    private readonly CancellationTokenSource _stop = new();
    private volatile GrpcChannel _channel;
    private volatile P.RaftClient.RaftClientClient _client;
    private readonly ILogger _logger;
    private readonly Task _runner;
    private volatile bool _paused;

    /// <summary>The ping on the current connection not answered yet (a Stopwatch timestamp), 0 when none.</summary>
    private long _pingSentAt;
    private long _lastPingAt;
    private readonly Timer _ackTimer;
    private volatile LinkConnection? _current;
    private volatile bool _acknowledged;
    private volatile CancellationTokenSource _linkLost = Cancelled();

    public NodeAddress Address { get; }
    /// <summary>The peer's client service (forwarded calls). Replaced when the link finds its path silent.</summary>
    public P.RaftClient.RaftClientClient Client => _client;
    /// <summary>The connection is open (the preface went through).</summary>
    public bool Connected { get; private set; }
    /// <summary>The connection is open and the peer has answered a ping on it: it hears this node.</summary>
    public bool Reachable => Connected && _acknowledged;
    /// <summary>Cancelled when the current connection ends (at once if there is none): a call forwarded to the
    /// peer gives up with it instead of waiting on a path found silent.</summary>
    public CancellationToken LinkLost => _linkLost.Token;

    /// <param name="handshake">Who this node is (its hello) and the check of the peer's answer; default:
    /// node -1 of no known cluster (tests).</param>
    public PeerClient(NodeAddress address, ILogger logger, PeerLinkTimings? timings = null, PeerHandshake? handshake = null)
    {
        Address = address;
        _logger = logger;
        _timings = timings ?? PeerLinkTimings.Default;
        _handshake = handshake ?? new PeerHandshake(-1, new ClusterIdentity(), _ => false, logger);
        _connector = new PeerSocketConnector(_timings, logger);
        _ackTimer = new Timer(static state => ((PeerClient)state!).CheckAcknowledgement(), this, Timeout.Infinite, Timeout.Infinite);
        _keepAliveTimer = new Timer(static state => ((PeerClient)state!).KeepAliveDue(), this, _timings.KeepAliveInterval, _timings.KeepAliveInterval);
        (_channel, _client) = CreateChannel(address, _handshake.Tls, _connector);
        _runner = Task.Run(RunAsync);
    }

    /// <summary>The channel of forwarded calls: h2c, or with peer TLS HTTP/2 inside a peer TLS connection (<see cref="PeerTls.ConfigureHandler"/>).</summary>
    private static (GrpcChannel, P.RaftClient.RaftClientClient) CreateChannel(NodeAddress address, PeerTls? tls, PeerSocketConnector connector)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(1),
            KeepAlivePingDelay = TimeSpan.FromSeconds(5),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(5),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            EnableMultipleHttp2Connections = true,
            InitialHttp2StreamWindowSize = 4 << 20,
        };
        if (tls is not null)
            tls.ConfigureHandler(handler, address, connect: connector.ConnectAsync);
        else
            handler.ConnectCallback = async (context, ct) => new NetworkStream(await connector.ConnectAsync(context.DnsEndPoint, ct), ownsSocket: true);
        var channel = GrpcChannel.ForAddress(address.HttpUri, new GrpcChannelOptions
        {
            // An HttpClient rather than the handler itself: given a SocketsHttpHandler, the channel
            // manages the connection itself (client-side load balancing's connectivity checks), and
            // then a forwarded call fails 100-200 ms after the peer's process died; through an
            // HttpClient it fails as soon as the connection ends.
            HttpClient = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan },
            DisposeHttpClient = true,
            MaxReceiveMessageSize = 64 << 20,
            MaxSendMessageSize = null,
        });
        return (channel, new P.RaftClient.RaftClientClient(channel));
    }

    /// <summary>A new gRPC channel (a new HTTP/2 connection) for calls from now on; calls on the old one fail.</summary>
    private void RenewChannel()
    {
        var old = _channel;
        var (channel, client) = CreateChannel(Address, _handshake.Tls, _connector);
        _channel = channel;
        _client = client;
        old.Dispose();
    }

    private static CancellationTokenSource Cancelled()
    {
        var cts = new CancellationTokenSource();
        cts.Cancel();
        return cts;
    }

    /// <summary>Queues a batch; never blocks (when the queue is full the oldest batch is dropped).</summary>
    public void Send(P.MessageBatch batch)
    {
        if (!_paused) _queue.Writer.TryWrite(batch);
    }

    /// <summary>Suspend: drop everything queued, close the connection and send nothing until resumed.</summary>
    public void Pause()
    {
        _paused = true;
        while (_queue.Reader.TryRead(out _)) { }
        try { _pauseCts?.Cancel(); } catch (ObjectDisposedException) { }
    }

    public void Resume() => _paused = false;

    private CancellationTokenSource? _pauseCts;

    /// <summary>
    /// Called (on a thread-pool thread) each time a connection to the peer is refused: nothing
    /// listens on its port, so its process is gone (killed or stopped; a host that is down or cut
    /// off gives a timeout instead, and no call). The host passes it to the core as a hint
    /// (<see cref="Consensus.RaftNode.LeaderUnreachable"/>), which acts on it only if the peer
    /// is its leader.
    /// </summary>
    public Action? Refused { get; set; }

    private async Task RunAsync()
    {
        var backoff = _timings.MinBackoff;
        var reader = _queue.Reader;
        var stop = _stop.Token;
        long quickBurstEnds = 0; // Environment.TickCount64 until which the current burst of quick retries lasts
        var quickRetries = 0; // made in the current burst
        while (!stop.IsCancellationRequested)
        {
            if (_paused)
            {
                while (reader.TryRead(out _)) { }
                if (!await DelayAsync(_timings.MinBackoff, stop)) return;
                continue;
            }
            var failure = await StreamAsync(reader, stop);
            if (stop.IsCancellationRequested) return;
            var wasConnected = Connected;
            Connected = false;
            if (_paused) continue;
            if (failure is SilentPeerException)
            {
                _logger.LogInformation("Node {Peer} did not answer on its link for {Timeout} ms: reconnecting", Address, (int)_timings.AckTimeout.TotalMilliseconds);
            }
            else if (wasConnected)
            {
                _logger.LogDebug("Lost node {Peer}: {Error}", Address, failure?.Message ?? "the connection ended");
            }
            if (failure is PeerRefusedException)
            {
                // A node of another cluster (or another node) at the peer's address: said in the log
                // (rate-limited); try again at the slowest back-off, it may be replaced by the right one.
                if (!await DelayAsync(_timings.MaxBackoff, stop)) return;
                while (reader.TryRead(out _)) { }
                continue;
            }
            if (failure is not null && IsRefused(failure))
            {
                _logger.LogDebug("Node {Peer} refused the connection", Address);
                try
                {
                    Refused?.Invoke();
                }
                catch (Exception e)
                {
                    // The host's callback failing must not end this link: it would never send again.
                    _logger.LogError(e, "Reporting that node {Peer} refused the connection failed", Address);
                }
            }

            // An attempt that timed out has waited already: the next starts at once (a dropped SYN
            // would be resent by the kernel only after 1 s). What was queued meanwhile is stale.
            if (failure is ConnectTimeoutException)
            {
                while (reader.TryRead(out _)) { }
                continue;
            }
            // A connection that was up and broke, that the peer closed (a killed process's kernel
            // closes it; so does a suspended or stopping peer), or that went silent: try again at
            // once, so that when the peer's process is gone its refusal, and so the hint, comes
            // within a round trip rather than a backoff; while the attempts keep breaking (not
            // refused), a few more after short pauses (QuickRetryPauses). One such burst per
            // MaxBackoff, so a peer whose connections keep breaking is not hammered.
            var now = Environment.TickCount64;
            if (failure is not null && IsConnectionLoss(failure) && !IsRefused(failure))
            {
                if (wasConnected && now >= quickBurstEnds)
                {
                    quickBurstEnds = now + (long)_timings.MaxBackoff.TotalMilliseconds;
                    quickRetries = 0;
                }
                if (now < quickBurstEnds && quickRetries < QuickRetryPauses.Length)
                {
                    var pause = QuickRetryPauses[quickRetries++];
                    if (pause > TimeSpan.Zero && !await DelayAsync(pause, stop)) return;
                    continue;
                }
            }
            if (wasConnected) backoff = _timings.MinBackoff;
            if (!await DelayAsync(backoff, stop)) return;
            while (reader.TryRead(out _)) { } // queued while the peer was unreachable: stale now
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, _timings.MaxBackoff.Ticks));
        }
    }

    /// <summary>One connection's life: how it ended, and a way for the watcher and the ack timer to end it.</summary>
    private sealed class LinkConnection(CancellationTokenSource cts)
    {
        private Exception? _ended;
        public Exception? Ended => Volatile.Read(ref _ended);
        public CancellationToken Token => cts.Token;

        /// <summary>Ends the connection for this reason (the first reason given wins).</summary>
        public void End(Exception reason)
        {
            Interlocked.CompareExchange(ref _ended, reason, null);
            CancelQuietly(cts);
        }
    }

    /// <summary>No acknowledgement came for a ping within the ack timeout: the path drops packets.</summary>
    internal sealed class SilentPeerException(TimeSpan silence)
        : IOException($"no acknowledgement from the peer for {(int)silence.TotalMilliseconds} ms");

    /// <summary>The peer's hello refused the connection (another cluster, or another node at the address).</summary>
    internal sealed class PeerRefusedException(string message) : IOException(message);

    internal sealed class ConnectTimeoutException(TimeSpan timeout)
        : IOException($"the peer did not accept the connection within {(int)timeout.TotalMilliseconds} ms");

    /// <summary>
    /// Opens the connection (<see cref="PeerWire"/>) and feeds it until it breaks. Returns why it
    /// ended: the failure, or null when this node is stopping or pausing.
    /// </summary>
    private async Task<Exception?> StreamAsync(ChannelReader<P.MessageBatch> reader, CancellationToken stop)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(stop);
        _pauseCts = linked;
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        ConfigureDeadPeerDetection(socket);
        TcpRetransmitFloor.Apply(socket, _timings.RetransmitFloor, _logger);
        var connection = new LinkConnection(linked);
        var connected = false;
        SslStream? ssl = null;
        try
        {
            using (var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(linked.Token))
            {
                connectTimeout.CancelAfter(_timings.ConnectTimeout);
                try
                {
                    await socket.ConnectAsync(Address.Host, Address.Port, connectTimeout.Token);
                }
                catch (OperationCanceledException) when (!linked.IsCancellationRequested)
                {
                    return new ConnectTimeoutException(_timings.ConnectTimeout);
                }
            }
            if (_handshake.Tls is { } tls)
            {
                try
                {
                    ssl = await tls.ConnectAsync(new NetworkStream(socket, ownsSocket: false), Address, linked.Token);
                }
                catch (PeerTlsRefusedException e)
                {
                    _handshake.Warn($"to {Address.Id} tls {e.Kind}", "{Error}", e.Message);
                    return new PeerRefusedException(e.Message);
                }
            }
            connected = true;
            Volatile.Write(ref _pingSentAt, 0);
            _acknowledged = false;
            _current = connection;
            _linkLost = new CancellationTokenSource();
            // The preface, this node's hello and a first ping: a connection the peer cannot answer on
            // is found at once. With peer TLS the preface went before the handshake.
            var prefaceBytes = ssl is null ? PeerWire.Preface.Length : 0;
            if (ssl is null) PeerWire.Preface.CopyTo(_frame);
            var hello = _handshake.LocalHello();
            hello.CopyTo(_frame, prefaceBytes);
            var length = AppendPing(prefaceBytes + hello.Length);
            await SendAllAsync(socket, ssl, _frame.AsMemory(0, length), linked.Token);
            Connected = true;
            _logger.LogDebug("Connected to node {Peer}", Address);
            // Watch the connection: the peer sends only acknowledgements of pings on it, so a receive
            // also ends when the connection does (a killed process's sockets are closed by the kernel
            // at once), while the loop below may wait long for something to send (a follower sends to
            // a dead leader only when its election timer fires).
            _ = WatchAsync(socket, ssl, connection);
            while (true)
            {
                while (reader.TryRead(out var batch))
                {
                    if (ReferenceEquals(batch, KeepAlive))
                    {
                        if (Volatile.Read(ref _pingSentAt) != 0) continue; // a ping is out already
                        length = AppendPing(0);
                        await SendAllAsync(socket, ssl, _frame.AsMemory(0, length), linked.Token);
                        continue;
                    }
                    // Batches that queued up while the last write was in flight go out as one.
                    for (var merged = 0; merged < 8 && reader.TryPeek(out var peeked) && !ReferenceEquals(peeked, KeepAlive)
                         && reader.TryRead(out var next); merged++)
                        batch.Messages.AddRange(next.Messages);
                    length = PeerWire.Write(batch, ref _frame);
                    if (PingDue()) length = AppendPing(length);
                    await SendAllAsync(socket, ssl, _frame.AsMemory(0, length), linked.Token);
                }
                if (!await reader.WaitToReadAsync(linked.Token)) return null; // disposing
            }
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            if (stop.IsCancellationRequested || _paused) return null;
            // Cancelled by the watcher or the ack timer: it says how the connection ended.
            var failure = e is OperationCanceledException ? connection.Ended ?? new IOException("the connection to the peer ended") : e;
            // The path is silent, not the peer gone: the HTTP/2 connection of forwarded calls crosses
            // it too and would wait out the same retransmission back-off. Replaced here, before the
            // finally below fires LinkLost, so a call that LinkLost ends finds the new one.
            if (failure is SilentPeerException) RenewChannel();
            return failure;
        }
        finally
        {
            _current = null;
            if (connected) _ = _linkLost.CancelAsync();
            ssl?.Dispose();
        }
    }

    private bool PingDue() =>
        Volatile.Read(ref _pingSentAt) == 0 && Stopwatch.GetElapsedTime(_lastPingAt) >= _timings.PingInterval;

    /// <summary>Appends a ping (an empty frame) to the <paramref name="length"/> bytes of <see cref="_frame"/>
    /// about to be sent, and starts its deadline; returns the new length.</summary>
    private int AppendPing(int length)
    {
        if (_frame.Length < length + PeerWire.HeaderBytes) Array.Resize(ref _frame, length + PeerWire.HeaderBytes);
        PeerWire.WritePing(_frame.AsSpan(length));
        var now = Stopwatch.GetTimestamp();
        _lastPingAt = now;
        Volatile.Write(ref _pingSentAt, now);
        _ackTimer.Change(_timings.AckTimeout, Timeout.InfiniteTimeSpan);
        return length + PeerWire.HeaderBytes;
    }

    /// <summary>The ack timer: a ping still unanswered after the ack timeout ends the connection.</summary>
    private void CheckAcknowledgement()
    {
        var sent = Volatile.Read(ref _pingSentAt);
        if (sent == 0 || _current is not { } connection) return;
        var silence = Stopwatch.GetElapsedTime(sent);
        if (silence >= _timings.AckTimeout)
            connection.End(new SilentPeerException(silence));
        else
            _ackTimer.Change(_timings.AckTimeout - silence, Timeout.InfiniteTimeSpan);
    }

    private async Task SendAllAsync(Socket socket, SslStream? ssl, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        if (ssl is not null) await ssl.WriteAsync(data, ct);
        else while (data.Length > 0)
        {
            var sent = await socket.SendAsync(data, SocketFlags.None, ct);
            data = data[sent..];
        }
        Volatile.Write(ref _lastSendAt, Stopwatch.GetTimestamp());
    }

    /// <summary>The keep-alive timer: a connected link that sent nothing for the interval queues a ping.</summary>
    private void KeepAliveDue()
    {
        if (_paused || !Connected || Stopwatch.GetElapsedTime(Volatile.Read(ref _lastSendAt)) < _timings.KeepAliveInterval) return;
        _queue.Writer.TryWrite(KeepAlive);
    }

    /// <summary>Reads the peer's hello, then its acknowledgements of pings (empty frames); a hello that
    /// refuses the connection, anything else, or the end of the stream, ends the connection.</summary>
    private async Task WatchAsync(Socket socket, SslStream? ssl, LinkConnection connection)
    {
        var buffer = new byte[PeerWire.HeaderBytes + PeerWire.MaxHelloBytes];
        var filled = 0;
        try
        {
            var helloLength = -1;
            while (helloLength < 0 || filled < PeerWire.HeaderBytes + helloLength)
            {
                int n;
                try
                {
                    n = ssl is null
                        ? await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, connection.Token)
                        : await ssl.ReadAsync(buffer.AsMemory(filled), connection.Token);
                }
                catch (Exception e) when (ssl is not null && e is AuthenticationException or IOException)
                {
                    n = 0; // a TLS alert: the peer refused this node's certificate (below)
                }
                if (n == 0)
                {
                    if (ssl is not null)
                    {
                        var message = $"node {Address.Id} at {Address.Authority}: it ended the peer TLS connection before its hello " +
                            "(it refused this node's certificate or hello; its log says why)";
                        _handshake.Warn($"to {Address.Id} tls closed", "Refused the connection to {Error}", message);
                        connection.End(new PeerRefusedException(message));
                        return;
                    }
                    connection.End(new IOException("the peer closed the connection before it said who it is"));
                    return;
                }
                filled += n;
                if (ssl is null && buffer[0] == PeerWire.TlsPreface[0])
                {
                    // A peer TLS node's refusal of a plain connection: it answered with its TLS preface.
                    var message = $"node {Address.Id} at {Address.Authority}: it requires peer TLS, and this node does not use it (no --peer-cert-file); " +
                        "give every node of the cluster the peer TLS options, or none of them";
                    _handshake.Warn($"to {Address.Id} plain", "Refused the connection to {Error}", message);
                    connection.End(new PeerRefusedException(message));
                    return;
                }
                if (helloLength < 0 && filled >= PeerWire.HeaderBytes) helloLength = PeerWire.HelloLength(buffer);
            }
            var answer = PeerWire.ParseHello(buffer.AsSpan(PeerWire.HeaderBytes, helloLength));
            if (!_handshake.AcceptAnswer(answer, Address))
            {
                connection.End(new PeerRefusedException($"node {Address} answered as node {answer.NodeId} of cluster {ClusterIdentity.Format(answer.ClusterId)}"));
                return;
            }
            var rest = filled - PeerWire.HeaderBytes - helloLength;
            Array.Copy(buffer, PeerWire.HeaderBytes + helloLength, buffer, 0, rest);
            filled = rest;
            while (true)
            {
                var at = 0;
                for (; filled - at >= PeerWire.HeaderBytes; at += PeerWire.HeaderBytes)
                {
                    if (!PeerWire.IsPing(buffer.AsSpan(at)))
                    {
                        connection.End(new IOException("the peer sent something other than an acknowledgement"));
                        return;
                    }
                    Volatile.Write(ref _pingSentAt, 0);
                    _acknowledged = true;
                }
                Array.Copy(buffer, at, buffer, 0, filled - at);
                filled -= at;
                var n = ssl is null
                    ? await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, connection.Token)
                    : await ssl.ReadAsync(buffer.AsMemory(filled), connection.Token);
                if (n == 0)
                {
                    // The peer closed the connection (it stopped, or was killed with nothing unread).
                    connection.End(new IOException("the peer closed the connection"));
                    return;
                }
                filled += n;
            }
        }
        catch (InvalidDataException e)
        {
            connection.End(new IOException($"the peer's hello: {e.Message}", e));
        }
        catch (Exception e) when (e is SocketException or IOException or AuthenticationException)
        {
            connection.End(e is AuthenticationException ? new IOException(e.Message, e) : e); // reset: a killed process with data unread, or a host that gave up on us
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
            // we ended it (stopping, pausing, a failed send, the ack timer)
        }
    }

    /// <summary>
    /// A peer host that dies or is cut off sends no FIN or RST: without this, data would wait
    /// unacknowledged for the kernel's retransmission limit (minutes). Linux: give up on
    /// unacknowledged data after <see cref="DeadPeerTimeout"/> (TCP_USER_TIMEOUT), and probe an
    /// idle connection after 5 s (keep-alive), as the gRPC channel's HTTP/2 pings did.
    /// </summary>
    private static void ConfigureDeadPeerDetection(Socket socket)
    {
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, 5);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, 1);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, 5);
        if (OperatingSystem.IsLinux())
        {
            const int IpProtoTcp = 6, TcpUserTimeout = 18;
            socket.SetRawSocketOption(IpProtoTcp, TcpUserTimeout, BitConverter.GetBytes((int)DeadPeerTimeout.TotalMilliseconds));
        }
    }

    private static void CancelQuietly(CancellationTokenSource cts)
    {
        try { cts.Cancel(); } catch (ObjectDisposedException) { /* the connection is already gone */ }
    }

    private static async Task<bool> DelayAsync(TimeSpan delay, CancellationToken stop)
    {
        try
        {
            await Task.Delay(delay, stop);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>The connection to the peer was refused: nothing listens on its address.</summary>
    internal static bool IsRefused(Exception e) =>
        Causes(e).Any(c => c is SocketException { SocketErrorCode: SocketError.ConnectionRefused });

    /// <summary>The connection failed or broke (as opposed to this node stopping or pausing it).</summary>
    internal static bool IsConnectionLoss(Exception e) =>
        Causes(e).Any(c => c is IOException or SocketException);

    /// <summary>The exception and its inner exceptions, outermost first.</summary>
    private static IEnumerable<Exception> Causes(Exception? e)
    {
        for (var depth = 0; e is not null && depth < 16; depth++, e = e.InnerException)
            yield return e;
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _ackTimer.DisposeAsync();
        await _keepAliveTimer.DisposeAsync();
        _queue.Writer.TryComplete();
        try { await _runner.WaitAsync(TimeSpan.FromSeconds(2)); } catch { /* shutting down */ }
        _channel.Dispose();
    }
}
