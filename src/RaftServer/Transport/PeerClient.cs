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
/// the node loop. A broken stream is reopened with exponential backoff (50 ms to 1 s); batches
/// queued meanwhile are dropped (Raft retransmits what matters). The same channel serves calls
/// to the peer's client service (a follower forwarding writes to the leader).
/// </summary>
public sealed class PeerClient : IAsyncDisposable
{
    private static readonly TimeSpan MinBackoff = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(1);

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

    public PeerClient(NodeAddress address, ILogger logger)
    {
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
            HttpHandler = handler,
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

    private async Task RunAsync()
    {
        var backoff = MinBackoff;
        var reader = _queue.Reader;
        var stop = _stop.Token;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                if (!await reader.WaitToReadAsync(stop)) return;
                if (_paused)
                {
                    while (reader.TryRead(out _)) { }
                    continue;
                }
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(stop);
                _pauseCts = linked;
                using var call = _peer.Stream(cancellationToken: linked.Token);
                var stream = call.RequestStream;
                while (true)
                {
                    while (reader.TryRead(out var batch))
                    {
                        // Batches that queued up while the last write was in flight go out as one.
                        for (var merged = 0; merged < 8 && reader.TryPeek(out _) && reader.TryRead(out var next); merged++)
                            batch.Messages.AddRange(next.Messages);
                        await stream.WriteAsync(batch, linked.Token);
                        if (!Connected)
                        {
                            Connected = true;
                            backoff = MinBackoff;
                            _logger.LogDebug("Connected to node {Peer}", Address);
                        }
                    }
                    if (call.ResponseAsync.IsCompleted) break; // the peer ended the stream (suspended, stopping)
                    if (!await reader.WaitToReadAsync(linked.Token)) return;
                }
            }
            catch (Exception e) when (e is RpcException or IOException or InvalidOperationException or OperationCanceledException or HttpRequestException)
            {
                if (stop.IsCancellationRequested) return;
                if (Connected) _logger.LogDebug("Lost node {Peer}: {Error}", Address, e.Message);
            }
            Connected = false;
            while (reader.TryRead(out _)) { } // stale by the time we reconnect
            try
            {
                await Task.Delay(backoff, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
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
