using System.Diagnostics;
using Microsoft.Extensions.Logging;
using RaftServer.Cluster;
using RaftServer.Consensus;
using RaftServer.StateMachine;
using RaftServer.Storage;
using RaftServer.Transport;

namespace RaftServer.Hosting;

/// <summary>A leader's snapshot received in full by this node (file durable, state machine loaded
/// off the loop thread): the handle in the Snapshot message the receiver steps into the core.</summary>
/// <param name="Existing">The upload was for a snapshot this node already had: <paramref name="File"/> is that
/// file, kept, never deleted with the upload (<see cref="SnapshotUpload.KeptExisting"/>).</param>
public sealed record ReceivedSnapshot(SnapshotFile File, KvStore Store, bool Existing = false, ulong ClusterId = ClusterIdentity.Unknown);

/// <summary>
/// The server's snapshots (the driver's <see cref="ISnapshotPort"/>): taking them when the
/// <see cref="SnapshotPolicy"/> says so (captured on the loop thread, written and fsynced on a
/// background task, then the core and the log are compacted to it back on the loop), sending
/// the current one to followers that need it (<see cref="SnapshotSender"/>), receiving a
/// leader's (<see cref="ISnapshotSink"/>, on gRPC threads) and installing it.
/// </summary>
public sealed class SnapshotCoordinator : ISnapshotPort, ISnapshotSource, ISnapshotSink, IAsyncDisposable
{
    /// <summary>How long a leader's transfer of one snapshot may take before it is abandoned (and
    /// restarted from the beginning once the follower answers again).</summary>
    public static readonly TimeSpan TransferTimeout = TimeSpan.FromMinutes(2);

    private readonly NodeStorage _storage;
    private readonly SnapshotPolicy _policy;
    private readonly SnapshotSender _sender;
    private readonly Action<LoopEvent> _post;
    private readonly ILogger _logger;
    /// <summary>The snapshot the core's log starts after (what a lagging follower is sent); read by transfer tasks.</summary>
    private volatile SnapshotFile? _current;
    private long _lastSnapshotBytes;
    private bool _snapshotting;
    /// <summary>Bumped when the core is rebuilt (resume): a snapshot started before belongs to the old one.</summary>
    private int _generation;
    /// <summary>Received snapshots stepped into the core this turn; those it does not install are deleted.</summary>
    private readonly List<ReceivedSnapshot> _unclaimed = new();
    private readonly Membership _membership;

    /// <param name="post">Posts an event to the node loop (a save's or a transfer's end).</param>
    /// <summary>Peer TLS, when on: snapshots are sent over it.</summary>
    public Transport.PeerTls? PeerTls
    {
        init => _sender.Tls = value;
    }

    public SnapshotCoordinator(NodeStorage storage, Membership membership, SnapshotPolicy policy, Action<LoopEvent> post, ILoggerFactory loggers)
    {
        _storage = storage;
        _membership = membership;
        _policy = policy;
        _post = post;
        _logger = loggers.CreateLogger(Log.NodeCategory);
        _sender = new SnapshotSender(id => membership.Find(id)?.Address, this, (peer, ok) => post(new SnapshotTransferEnded(peer, ok)),
            TransferTimeout, loggers.CreateLogger("RaftServer.Transport"));
        _sender.Finished = (took, ok) => Metrics?.SnapshotSent(took, ok);
        _sender.ClusterId = () => membership.Identity.Id;
    }

    /// <summary>Where snapshot saves and transfers are timed; null for none.</summary>
    public Observability.NodeMetrics? Metrics { get; set; }

    /// <summary>The core's own give-up time for a transfer never reported: a little after the sender's.</summary>
    public static int TimeoutTicks(int heartbeatMs) => (int)((TransferTimeout.TotalMilliseconds + 10_000) / heartbeatMs);

    /// <exception cref="DiskFailureException">the cluster id the snapshot names could not be persisted.</exception>
    public void Restarted(RecoveredNode recovered)
    {
        // A node that crashed after a leader's snapshot became durable here and before the core
        // installed it recovers from it now: that is the install, so it takes the id that came
        // with it (kept beside the file only while this node knew none).
        if (recovered.Snapshot is { ClusterId: not ClusterIdentity.Unknown } snapshot && !_membership.Identity.Known
            && _membership.Identity.TryAdopt(snapshot.ClusterId))
            _logger.LogInformation("This node belongs to cluster {ClusterId} (the snapshot it recovered from says so)", ClusterIdentity.Format(snapshot.ClusterId));
        _current = recovered.Snapshot;
        _lastSnapshotBytes = recovered.Snapshot?.Length ?? 0;
        _generation++;
    }

    // ---- taking a snapshot (every node, on its own) ----

    public void AfterApply(RaftNode node, KvStore state, long appliedTerm)
    {
        if (_snapshotting) return;
        var applied = state.AppliedIndex;
        if (applied <= node.SnapshotIndex) return;
        if (!_policy.ShouldSnapshot(node.LogEntryCount, node.LogBytes, _lastSnapshotBytes)) return;

        // Only reference copies happen here; serialising and fsyncing run on the thread pool while
        // the loop goes on (the image is immutable).
        var image = state.CaptureImage();
        var meta = new SnapshotMetadata(applied, appliedTerm, node.ConfigurationAt(applied));
        var store = _storage.Snapshots;
        var generation = _generation;
        _snapshotting = true;
        _ = Task.Run(() =>
        {
            try
            {
                var started = Stopwatch.GetTimestamp();
                var file = store.Save(meta, stream => KvSnapshotCodec.Write(image, stream));
                Metrics?.SnapshotSaved(Stopwatch.GetElapsedTime(started));
                _post(new SnapshotSaved(file, generation, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds));
            }
            catch (Exception e)
            {
                _post(new SnapshotSaveFailed(e));
            }
        });
    }

    public void Saved(SnapshotSaved saved, RaftNode? node)
    {
        _snapshotting = false;
        var meta = saved.File.Meta;
        // Written for a core since rebuilt from disk (resume), or overtaken by a leader's snapshot:
        // the file stays (recovery may use it; Prune removes it in time), the log is not compacted.
        if (node is null || saved.Generation != _generation || meta.Index <= node.SnapshotIndex || meta.Index > node.AppliedIndex)
            return;

        var previous = _current;
        node.Compact(meta.Index);
        _current = saved.File;
        _lastSnapshotBytes = saved.File.Length;
        // Delete the segments the PREVIOUS snapshot covers: Prune keeps that one too, and should
        // the new file turn out damaged at the next start, the older snapshot plus the log from
        // it still make a contiguous history (no acknowledged write depends on a single file).
        // The current segment is not cut short: each segment is made (zero-filled) at its full
        // size ahead of time, and cutting one every few thousand entries would write far more
        // zeros than log. Segments are small, so whole ones still go soon.
        var removed = _storage.Wal.DeleteSegmentsThrough(previous?.Meta.Index ?? 0);
        _ = _storage.Snapshots.PruneInBackground(saved.File);
        Log.SnapshotTaken(_logger, meta.Index, meta.Term, saved.File.Length, saved.Milliseconds, removed);
    }

    /// <exception cref="DiskFailureException">the disk failed (a write, fsync, rename or directory
    /// fsync): the node stops, since whether the file or its name is on disk is no longer known.</exception>
    public void SaveFailed(SnapshotSaveFailed failed)
    {
        _snapshotting = false;
        if (failed.Error is IOException or UnauthorizedAccessException)
            throw new DiskFailureException($"writing a snapshot in {_storage.Snapshots.Directory} failed: {failed.Error.Message}", failed.Error);
        _logger.LogError(failed.Error, "Writing a snapshot failed: {Message}; the log is kept and another attempt follows", failed.Error.Message);
    }

    // ---- leader: sending ----

    public void SendSnapshots(IReadOnlyList<Message> messages)
    {
        for (var i = 0; i < messages.Count; i++)
            if (messages[i].Type == MessageType.Snapshot)
                _sender.Start(messages[i]);
    }

    public void CancelTransfers() => _sender.CancelAll();

    /// <summary>Called by the sender's task: the raw bytes of the snapshot the core sends now.</summary>
    Stream ISnapshotSource.OpenSnapshot(SnapshotMetadata meta)
    {
        var current = _current;
        if (current is null || current.Meta.Index != meta.Index || current.Meta.Term != meta.Term)
            throw new FileNotFoundException($"the snapshot at index {meta.Index} (term {meta.Term}) is no longer the current one");
        // Open files survive a later Prune (unlinked, still readable), so the transfer completes.
        return _storage.Snapshots.OpenRead(current);
    }

    // ---- follower: receiving and installing ----

    /// <summary>Called by the peer service for a leader's transfer (a gRPC thread).</summary>
    /// <remarks>The sender's cluster id is kept beside the file only while this node knows none (see <see cref="Restarted"/>).</remarks>
    ISnapshotUpload ISnapshotSink.BeginUpload(SnapshotMetadata meta, ulong clusterId) =>
        new Upload(_storage.Snapshots, _storage.Snapshots.BeginUpload(meta, _membership.Identity.Known ? ClusterIdentity.Unknown : clusterId), _post, clusterId);

    /// <summary>Writes the received bytes to a temporary file; on completion verifies and renames it
    /// and loads the state machine from it, still on the receiving thread, so installing is a swap.
    /// A failure to create or write the temporary file fails the transfer only (the file is
    /// discarded, nothing depends on it, and a sender must not be able to stop a node by filling its
    /// disk with uploads); a failure to make the file durable or to install it under its final name
    /// stops the node, as the WAL's do.</summary>
    private sealed class Upload(SnapshotStore store, SnapshotUpload upload, Action<LoopEvent> post, ulong clusterId) : ISnapshotUpload
    {
        public void Write(ReadOnlySpan<byte> chunk) => upload.Write(chunk);

        private Exception Failed(Exception e)
        {
            var failure = new DiskFailureException($"receiving a snapshot in {store.Directory} failed: {e.Message}", e);
            post(new DiskFailed(failure));
            return failure;
        }

        public object Complete()
        {
            SnapshotFile file;
            try
            {
                file = upload.Complete();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw Failed(e);
            }
            try
            {
                return new ReceivedSnapshot(file, store.Load(file), upload.KeptExisting, clusterId);
            }
            catch
            {
                if (!upload.KeptExisting) store.Delete(file);
                throw;
            }
        }

        public void Dispose() => upload.Dispose();
    }

    public void Received(object data) => _unclaimed.Add((ReceivedSnapshot)data);

    public KvStore Install(SnapshotMetadata meta, object? data)
    {
        if (data is not ReceivedSnapshot received || received.File.Meta.Index != meta.Index)
            throw new InvalidOperationException($"the core installed the snapshot at index {meta.Index} without its data");
        // A node that knows no cluster id yet takes its leader's with the snapshot the core installs
        // (not with any snapshot that verified: one the core refuses must not set this node's id).
        if (received.ClusterId != ClusterIdentity.Unknown && !_membership.Identity.Known && _membership.Identity.TryAdopt(received.ClusterId))
            _logger.LogInformation("This node belongs to cluster {ClusterId} (the installed snapshot says so)", ClusterIdentity.Format(received.ClusterId));
        // The file is already durable under its final name.
        _current = received.File;
        _lastSnapshotBytes = received.File.Length;
        _ = _storage.Snapshots.PruneInBackground(received.File);
        Log.SnapshotInstalled(_logger, meta.Index, meta.Term, received.File.Length, received.Store.Count);
        return received.Store;
    }

    /// <summary>Received snapshots the core did not install (older than what it has, or its log
    /// already holds their last entry) are deleted.</summary>
    public void DropUnclaimed(object? installed)
    {
        if (_unclaimed.Count == 0) return;
        foreach (var r in _unclaimed)
        {
            // Never the installed file, nor the node's current one: two uploads of the same snapshot
            // (one renamed into place, one that kept it) name the same path.
            if (ReferenceEquals(r, installed) || r.Existing || r.File.Path == _current?.Path
                || (installed is ReceivedSnapshot i && r.File.Path == i.File.Path)) continue;
            try
            {
                _storage.Snapshots.Delete(r.File);
            }
            catch (IOException e)
            {
                _logger.LogWarning("Could not delete the unused snapshot {Path}: {Message}", r.File.Path, e.Message);
            }
        }
        _unclaimed.Clear();
    }

    public ValueTask DisposeAsync() => _sender.DisposeAsync();
}
