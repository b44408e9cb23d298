using System.Net.Sockets;
using System.Threading.Channels;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using RaftServer.Hosting;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>
/// The link to one peer: one long-lived gRPC channel (HTTP/2, h2c) carrying one client stream of
/// <see cref="P.MessageBatch"/>es, fed from a bounded queue so a slow or dead peer never blocks
/// the node loop. A broken stream is reopened with exponential backoff (50 ms to 500 ms); batches
/// queued meanwhile are dropped (Raft retransmits what matters). The same channel serves calls
/// to the peer's client service (a follower forwarding writes to the leader).
/// A connection that breaks is retried at once, and a refused connection is reported
/// (<see cref="Refused"/>): that is how a follower learns within a round trip that its leader's
/// process was killed or stopped, instead of after an election timeout of silence.
/// </summary>
public sealed class PeerClient : IAsyncDisposable
{
    private static readonly TimeSpan MinBackoff = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromMilliseconds(500);

    private readonly Channel<P.MessageBatch> _queue = Channel.CreateBounded<P.MessageBatch>(
        new BoundedChannelOptions(512) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true, SingleWriter = true });
    private readonly CancellationTokenSource _stop = new();
    private readonly GrpcChannel _channel;
    private readonly P.RaftPeer.RaftPeerClient _peer;
    private readonly ILogger _logger;
    private readonly Task _runner;
    private volatile bool _paused;

    public NodeAddress Address { get; }
    public P.RaftClient.RaftClientClient Client { get; }
    /// <summary>The stream is open (the last write went through).</summary>
    public bool Connected { get; private set; }

    private readonly int _self;

    public PeerClient(int self, NodeAddress address, ILogger logger)
    {
        _self = self;
        Address = address;
        _logger = logger;
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
        _channel = GrpcChannel.ForAddress($"http://{address.Host}:{address.Port}", new GrpcChannelOptions
        {
            // An HttpClient rather than the handler itself: given a SocketsHttpHandler, the channel
            // manages the connection itself (client-side load balancing's connectivity checks), and
            // then a call fails 100-200 ms after the peer's process died; through an HttpClient it
            // fails as soon as the connection ends. Reconnecting is this class's job anyway.
            HttpClient = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan },
            DisposeHttpClient = true,
            MaxReceiveMessageSize = 64 << 20,
            MaxSendMessageSize = null,
        });
        _peer = new P.RaftPeer.RaftPeerClient(_channel);
        Client = new P.RaftClient.RaftClientClient(_channel);
        _runner = Task.Run(RunAsync);
    }

    /// <summary>Queues a batch; never blocks (when the queue is full the oldest batch is dropped).</summary>
    public void Send(P.MessageBatch batch)
    {
        if (!_paused) _queue.Writer.TryWrite(batch);
    }

    /// <summary>Suspend: drop everything queued, close the stream and send nothing until resumed.</summary>
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
        var backoff = MinBackoff;
        var reader = _queue.Reader;
        var stop = _stop.Token;
        long nextQuickRetry = 0; // Environment.TickCount64 from which a broken stream may be retried at once
        while (!stop.IsCancellationRequested)
        {
            if (_paused)
            {
                while (reader.TryRead(out _)) { }
                if (!await DelayAsync(MinBackoff, stop)) return;
                continue;
            }
            var failure = await StreamAsync(reader, stop);
            if (stop.IsCancellationRequested) return;
            var wasConnected = Connected;
            Connected = false;
            if (_paused) continue;
            if (wasConnected) _logger.LogDebug("Lost node {Peer}: {Error}", Address, failure?.Message ?? "the stream ended");
            if (failure is not null && IsRefused(failure))
            {
                _logger.LogDebug("Node {Peer} refused the connection", Address);
                Refused?.Invoke();
            }

            // A connection that was up and broke (not a stream the peer ended or refused): try again
            // at once, so that when the peer's process is gone its refusal, and so the hint, comes
            // within a round trip rather than a backoff. At most once per MaxBackoff, so a peer
            // whose connections keep breaking is not hammered.
            var now = Environment.TickCount64;
            if (wasConnected && failure is not null && IsConnectionLoss(failure) && now >= nextQuickRetry)
            {
                nextQuickRetry = now + (long)MaxBackoff.TotalMilliseconds;
                continue;
            }
            if (wasConnected) backoff = MinBackoff;
            if (!await DelayAsync(backoff, stop)) return;
            while (reader.TryRead(out _)) { } // queued while the peer was unreachable: stale now
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
        }
    }

    /// <summary>
    /// Opens the stream and feeds it until it breaks. Returns why it ended: the call's failure,
    /// or null when the peer closed it (it is stopping) or this node is stopping or pausing.
    /// </summary>
    private async Task<Exception?> StreamAsync(ChannelReader<P.MessageBatch> reader, CancellationToken stop)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(stop);
        _pauseCts = linked;
        using var call = _peer.Stream(cancellationToken: linked.Token);
        // Watch the response: it ends the moment the connection does (a killed process's sockets
        // are closed by the kernel at once), while the loop below may wait long for something to
        // send (a follower sends to a dead leader only when its election timer fires).
        _ = call.ResponseAsync.ContinueWith(static (_, state) => CancelQuietly((CancellationTokenSource)state!), linked,
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        try
        {
            var stream = call.RequestStream;
            // Connect now rather than with the first real message, so that message (often a
            // pre-vote at start-up) does not wait for the connection: an empty batch says hello.
            await stream.WriteAsync(new P.MessageBatch { From = _self }, linked.Token);
            Connected = true;
            _logger.LogDebug("Connected to node {Peer}", Address);
            while (true)
            {
                while (reader.TryRead(out var batch))
                {
                    // Batches that queued up while the last write was in flight go out as one.
                    for (var merged = 0; merged < 8 && reader.TryPeek(out _) && reader.TryRead(out var next); merged++)
                        batch.Messages.AddRange(next.Messages);
                    await stream.WriteAsync(batch, linked.Token);
                }
                if (call.ResponseAsync.IsCompleted) break; // the peer ended the stream (suspended, stopping)
                if (!await reader.WaitToReadAsync(linked.Token)) return null; // disposing
            }
        }
        catch (Exception e) when (e is RpcException or IOException or InvalidOperationException or OperationCanceledException or HttpRequestException)
        {
            if (stop.IsCancellationRequested || _paused) return null;
            // Our own cancellation (above) or a failed write: the response says what happened.
            if (!call.ResponseAsync.IsCompleted) return e;
        }
        return call.ResponseAsync.IsFaulted ? call.ResponseAsync.Exception!.InnerException : null;
    }

    private static void CancelQuietly(CancellationTokenSource cts)
    {
        try { cts.Cancel(); } catch (ObjectDisposedException) { /* the stream is already gone */ }
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

    /// <summary>The connection failed or broke under the call (as opposed to a status the peer answered with).</summary>
    internal static bool IsConnectionLoss(Exception e) =>
        Causes(e).Any(c => c is HttpRequestException or IOException or SocketException);

    /// <summary>The exception, its inner exceptions and a gRPC status's debug exception, outermost first.</summary>
    private static IEnumerable<Exception> Causes(Exception? e)
    {
        for (var depth = 0; e is not null && depth < 16; depth++)
        {
            yield return e;
            e = e is RpcException { Status.DebugException: { } debug } ? debug : e.InnerException;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _queue.Writer.TryComplete();
        try { await _runner.WaitAsync(TimeSpan.FromSeconds(2)); } catch { /* shutting down */ }
        _channel.Dispose();
    }
}

/// <summary>Posted to the node loop when a peer refused a connection (<see cref="PeerClient.Refused"/>).</summary>
public sealed record PeerUnreachable(int PeerId);
