using System.Diagnostics;
using System.Runtime.CompilerServices;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using RaftServer.Cluster;
using RaftServer.Consensus;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>
/// The leader's side of InstallSnapshot. For each Snapshot message of the core it streams the
/// named snapshot file to the peer on a background task, one chunk at a time, and reports the
/// outcome exactly once through the callback given at construction (the host posts it to the
/// loop, which calls <see cref="RaftNode.ReportSnapshot"/>). At most one transfer per peer runs:
/// a repeated request for the running snapshot is ignored, any other request replaces it.
/// Every failure (snapshot gone, peer down or refusing, deadline) is a report of false, never an
/// exception in the caller. Each peer gets its own gRPC channel, apart from the
/// <see cref="PeerClient"/>'s, so megabytes of snapshot never queue ahead of heartbeats.
/// </summary>
public sealed class SnapshotSender : IAsyncDisposable
{
    /// <summary>1 MiB: few enough messages to run at wire speed, small enough that a transfer
    /// holds little memory (and well under gRPC's default 4 MB message limit).</summary>
    public const int DefaultChunkBytes = 1 << 20;

    private readonly Func<int, NodeAddress?> _addressOf;
    private readonly ISnapshotSource _source;
    private readonly Action<int, bool> _report;
    private readonly TimeSpan _timeout;
    private readonly ILogger _logger;
    private readonly int _chunkBytes;

    // Guards the two maps and _disposed. Transfers end on thread-pool threads while the loop
    // starts and cancels them; the lock is never held across I/O or the report callback.
    private readonly Lock _gate = new();
    private readonly Dictionary<int, Transfer> _running = new();
    private readonly Dictionary<int, (NodeAddress Address, GrpcChannel Channel)> _channels = new();
    private bool _disposed;

    private sealed class Transfer(int peer, Message message, TimeSpan timeout)
    {
        public int Peer { get; } = peer;
        public Message Message { get; } = message;
        public SnapshotMetadata Meta { get; } = message.Snapshot!;
        public CancellationTokenSource Cts { get; } = new(timeout);
        /// <summary>Why it was cancelled, when the loop cancelled it (null: the deadline passed).</summary>
        public string? CancelReason;
        public Task Task = Task.CompletedTask;

        public void Cancel(string reason)
        {
            CancelReason ??= reason;
            Cts.Cancel();
        }
    }

    /// <param name="addressOf">A peer's current address (the <see cref="Membership"/>'s), null for a non-member.</param>
    /// <param name="source">Opens the snapshot file a Snapshot message names.</param>
    /// <param name="report">Called once per transfer, on a background thread, with the peer and
    /// whether the peer received the whole snapshot. Must not block.</param>
    /// <param name="timeout">A transfer still running after this is abandoned (reported false):
    /// the core's snapshot timeout, after which it gives up on its own.</param>
    public SnapshotSender(Func<int, NodeAddress?> addressOf, ISnapshotSource source, Action<int, bool> report, TimeSpan timeout,
        ILogger logger, int chunkBytes = DefaultChunkBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkBytes, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(chunkBytes, SnapshotReceiver.MaxChunkBytes);
        _addressOf = addressOf;
        _source = source;
        _report = report;
        _timeout = timeout;
        _logger = logger;
        _chunkBytes = chunkBytes;
    }

    /// <summary>This node's cluster id as known now, sent in each header (a receiver of another cluster refuses); null: 0, none known.</summary>
    public Func<ulong>? ClusterId { get; set; }

    /// <summary>
    /// Starts sending the snapshot a Snapshot message of the core names to its <see cref="Message.To"/>.
    /// Returns at once (called from the node loop). Ignored while the same snapshot (index and
    /// term) is already on its way to that peer; a different one cancels the running transfer,
    /// which reports false.
    /// </summary>
    public void Start(Message m)
    {
        if (m.Type != MessageType.Snapshot || m.Snapshot is null)
            throw new ArgumentException($"a Snapshot message with metadata is required, not {m.Type}", nameof(m));
        lock (_gate)
        {
            if (_disposed) return;
            if (_running.TryGetValue(m.To, out var old))
            {
                // The same transfer asked for again (the core re-probed before we reported): let it
                // finish; its report answers both. A cancelled one (deadline, CancelAll) is finishing
                // and will report false, so it does not count as running.
                if (!old.Cts.IsCancellationRequested && old.Meta.Index == m.Snapshot.Index && old.Message.Term == m.Term) return;
                old.Cancel(m.Snapshot.Index != old.Meta.Index ? $"superseded by snapshot {m.Snapshot.Index}" : "superseded");
            }
            var t = new Transfer(m.To, m, _timeout);
            _running[m.To] = t;
            t.Task = Task.Run(() => RunAsync(t));
        }
    }

    /// <summary>Cancels every running transfer (leadership lost, node suspended); each reports false.</summary>
    public void CancelAll()
    {
        lock (_gate) CancelAllLocked("cancelled");
    }

    private List<Task> CancelAllLocked(string reason)
    {
        var tasks = new List<Task>(_running.Count);
        foreach (var t in _running.Values)
        {
            t.Cancel(reason);
            tasks.Add(t.Task);
        }
        return tasks;
    }

    private async Task RunAsync(Transfer t)
    {
        var clock = Stopwatch.StartNew();
        var sent = new StrongBox<long>();
        string? error = null;
        var meta = t.Meta;
        try
        {
            var client = new P.RaftPeer.RaftPeerClient(ChannelFor(t.Peer));
            await using var file = _source.OpenSnapshot(meta);
            var header = new P.SnapshotHeader
            {
                From = t.Message.From, To = t.Peer, Term = t.Message.Term,
                SnapshotIndex = meta.Index, SnapshotTerm = meta.Term, TotalLength = file.Length,
                ClusterId = ClusterId?.Invoke() ?? 0,
            };
            header.Members.AddRange(meta.Members);
            header.Configuration = ByteString.CopyFrom(meta.Configuration.Encode());
            // The deadline travels with the call, so the receiver also gives up (and discards) then.
            using var call = client.InstallSnapshot(deadline: DateTime.UtcNow + _timeout, cancellationToken: t.Cts.Token);
            // One buffer per transfer, owned by this task alone (not pooled), so no other code can
            // see it while gRPC may still be serializing from it.
            try
            {
                await PumpAsync(file, call.RequestStream, header, new byte[_chunkBytes], sent, t.Cts.Token);
                await call.RequestStream.CompleteAsync();
            }
            catch (Exception e) when (e is RpcException or InvalidOperationException)
            {
                // A write fails once the call has ended (the peer refused or aborted the upload, or
                // the connection broke), often with a bare "the call is complete": its answer, at
                // hand by then, says why. (A failing snapshot file throws other exceptions and
                // must not wait here for an answer the peer will not give until the deadline.)
                await call.ResponseAsync;
                throw;
            }
            var ack = await call.ResponseAsync;
            if (ack.Received != sent.Value) error = $"the peer acknowledged {ack.Received} of {sent.Value} bytes";
        }
        catch (OperationCanceledException)
        {
            error = t.CancelReason ?? $"no answer within {_timeout.TotalMilliseconds:F0} ms";
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && t.Cts.IsCancellationRequested)
        {
            error = t.CancelReason ?? $"no answer within {_timeout.TotalMilliseconds:F0} ms";
        }
        catch (RpcException e)
        {
            error = $"{e.StatusCode}: {e.Status.Detail}";
        }
        catch (Exception e)
        {
            // Snapshot file gone (FileNotFoundException), unreadable, or the connection failed.
            error = e.Message;
        }
        Finish(t, sent.Value, clock.ElapsedMilliseconds, error);
    }

    /// <summary>
    /// Streams <paramref name="source"/> as chunks: reads one chunk, awaits its write (so gRPC's
    /// and HTTP/2's flow control hold the reader back to the receiver's pace), then reads the
    /// next into the same buffer; the sender never reads ahead of what it has handed to gRPC.
    /// The header rides on the first chunk, <c>done</c> on the last. <paramref name="sent"/>
    /// counts the bytes written so far (for the log line when the transfer fails midway).
    /// </summary>
    internal static async Task PumpAsync(Stream source, IAsyncStreamWriter<P.SnapshotChunk> writer, P.SnapshotHeader header,
        byte[] buffer, StrongBox<long> sent, CancellationToken ct)
    {
        var total = header.TotalLength;
        long offset = 0;
        var first = true;
        while (true)
        {
            var want = (int)Math.Min(buffer.Length, total - offset);
            var n = want == 0 ? 0 : await source.ReadAtLeastAsync(buffer.AsMemory(0, want), want, throwOnEndOfStream: false, ct);
            if (n < want) throw new EndOfStreamException($"the snapshot file ended at {offset + n} of its {total} bytes");
            var chunk = new P.SnapshotChunk
            {
                Offset = offset,
                // No copy: gRPC serializes the message inside WriteAsync, and the buffer is reused
                // only after that write has completed.
                Data = n == 0 ? ByteString.Empty : UnsafeByteOperations.UnsafeWrap(buffer.AsMemory(0, n)),
                Done = offset + n == total,
            };
            if (first) chunk.Header = header;
            first = false;
            await writer.WriteAsync(chunk, ct);
            offset += n;
            sent.Value = offset;
            if (chunk.Done) return;
        }
    }

    private GrpcChannel ChannelFor(int peer)
    {
        var address = _addressOf(peer) ?? throw new InvalidOperationException($"node {peer} is not a member");
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_channels.TryGetValue(peer, out var known))
            {
                if (known.Address == address) return known.Channel;
                known.Channel.Dispose(); // the member moved: a transfer still on the old channel fails and is retried
            }
            // h2c like the peer streams. No connect timeout of its own: the transfer's deadline
            // bounds everything. Pings notice a peer that vanished mid-transfer before the deadline.
            var handler = new SocketsHttpHandler
            {
                KeepAlivePingDelay = TimeSpan.FromSeconds(5),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(5),
                KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
            };
            Tls?.ConfigureHandler(handler, address); // peer TLS: HTTP/2 inside a peer TLS connection
            var channel = GrpcChannel.ForAddress(address.HttpUri, new GrpcChannelOptions { HttpHandler = handler });
            _channels[peer] = (address, channel);
            return channel;
        }
    }

    /// <summary>Peer TLS, when on: uploads go over peer TLS connections. Set before the first transfer.</summary>
    public PeerTls? Tls { get; set; }

    /// <summary>Called as each transfer ends, with its duration and whether it succeeded (metrics).</summary>
    public Action<TimeSpan, bool>? Finished { get; set; }

    private void Finish(Transfer t, long sent, long ms, string? error)
    {
        Finished?.Invoke(TimeSpan.FromMilliseconds(ms), error is null);
        lock (_gate)
        {
            if (_running.TryGetValue(t.Peer, out var current) && current == t) _running.Remove(t.Peer);
            t.Cts.Dispose();
        }
        var meta = t.Meta;
        if (error is null)
        {
            var mbps = ms > 0 ? sent / 1e3 / ms : 0;
            _logger.LogInformation("Sent snapshot {Index} (term {Term}) to node {Peer}: {Bytes} bytes in {Ms} ms ({MBps:F1} MB/s)",
                meta.Index, meta.Term, t.Peer, sent, ms, mbps);
        }
        else
        {
            _logger.LogInformation("Snapshot {Index} (term {Term}) to node {Peer} failed after {Bytes} bytes, {Ms} ms: {Error}",
                meta.Index, meta.Term, t.Peer, sent, ms, error);
        }
        try
        {
            _report(t.Peer, error is null);
        }
        catch (Exception e)
        {
            // The callback is the host's; a bug there must not become an unobserved task exception.
            _logger.LogError(e, "Reporting the snapshot transfer to node {Peer} failed", t.Peer);
        }
    }

    /// <summary>Cancels every transfer (each reports false), waits for them to end, closes the channels.</summary>
    public async ValueTask DisposeAsync()
    {
        List<Task> tasks;
        lock (_gate)
        {
            if (_disposed) return;
            tasks = CancelAllLocked("the sender is stopping");
            _disposed = true;
        }
        try
        {
            await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
            _logger.LogWarning("Snapshot transfers did not stop within 5 s");
        }
        lock (_gate)
        {
            foreach (var c in _channels.Values) c.Channel.Dispose();
            _channels.Clear();
        }
    }
}
