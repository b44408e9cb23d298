using System.Diagnostics;
using Microsoft.Extensions.Logging;
using RaftServer.Consensus;
using RaftServer.StateMachine;
using RaftServer.Storage;
using RaftServer.Transport;

namespace RaftServer.Hosting;

/// <summary>A leader's snapshot received in full by this node (file durable, state machine loaded
/// off the loop thread): the handle in the Snapshot message the receiver steps into the core.</summary>
public sealed record ReceivedSnapshot(SnapshotFile File, KvStore Store);

/// <summary>
/// Snapshots in the node loop (README "Consensus core > Snapshots"): taking them when the
/// <see cref="SnapshotPolicy"/> says so (captured on the loop thread, written and fsynced on a
/// background task, then the core and the log are compacted to it back on the loop), sending the
/// current one to followers that need it, and installing a leader's.
/// </summary>
public sealed partial class NodeLoop : ISnapshotSource, ISnapshotSink
{
    private readonly SnapshotPolicy _policy;
    private readonly SnapshotSender _sender;
    /// <summary>The snapshot the core's log starts after (what a lagging follower is sent).</summary>
    private volatile SnapshotFile? _currentSnapshot;
    private long _lastSnapshotBytes;
    private long _appliedTerm;
    private bool _snapshotting;
    /// <summary>Bumped when the core is rebuilt (resume): a snapshot started before belongs to the old one.</summary>
    private int _nodeGeneration;
    /// <summary>Received snapshots stepped into the core this turn; those it does not install are deleted.</summary>
    private readonly List<ReceivedSnapshot> _unclaimedSnapshots = new();

    private sealed record SnapshotSaved(SnapshotFile File, int Generation, long Milliseconds);
    private sealed record SnapshotFailed(Exception Error);
    private sealed record SnapshotTransferEnded(int Peer, bool Success);

    /// <summary>How long a leader's transfer of one snapshot may take before it is abandoned (and
    /// restarted from the beginning once the follower answers again).</summary>
    public static readonly TimeSpan SnapshotTransferTimeout = TimeSpan.FromMinutes(2);

    private SnapshotSender CreateSnapshotSender(ILoggerFactory loggers) =>
        new(_config.Nodes, this, (peer, ok) => Post(new SnapshotTransferEnded(peer, ok)),
            SnapshotTransferTimeout, loggers.CreateLogger("RaftServer.Transport"));

    /// <summary>The core's own give-up time for a transfer never reported: a little after the sender's.</summary>
    private int SnapshotTimeoutTicks => (int)((SnapshotTransferTimeout.TotalMilliseconds + 10_000) / _settings.HeartbeatMs);

    private void HandleSnapshotEvent(object ev)
    {
        switch (ev)
        {
            case SnapshotSaved saved:
                OnSnapshotSaved(saved);
                break;
            case SnapshotFailed failed:
                _snapshotting = false;
                _logger.LogError(failed.Error, "Writing a snapshot failed: {Message}; the log is kept and another attempt follows", failed.Error.Message);
                break;
            case SnapshotTransferEnded ended:
                if (!_suspended) _node.ReportSnapshot(ended.Peer, ended.Success);
                break;
            default:
                throw new InvalidOperationException($"unknown event {ev.GetType().Name}");
        }
    }

    // ---- taking a snapshot (every node, on its own) ----

    private void MaybeTakeSnapshot()
    {
        if (_snapshotting) return;
        var applied = _kv.AppliedIndex;
        if (applied <= _node.CurrentSnapshot.Index) return;
        if (!_policy.ShouldSnapshot(_node.LogEntryCount, _node.LogBytes, _lastSnapshotBytes)) return;

        // Only reference copies happen here; serialising and fsyncing run on the thread pool while
        // the loop goes on (the image is immutable).
        var image = _kv.CaptureImage();
        var meta = new SnapshotMetadata(applied, _appliedTerm, _config.Nodes.Select(n => n.Id).ToArray());
        var store = _storage.Snapshots;
        var generation = _nodeGeneration;
        _snapshotting = true;
        _ = Task.Run(() =>
        {
            try
            {
                var started = Stopwatch.GetTimestamp();
                var file = store.Save(meta, stream => KvSnapshotCodec.Write(image, stream));
                Post(new SnapshotSaved(file, generation, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds));
            }
            catch (Exception e)
            {
                Post(new SnapshotFailed(e));
            }
        });
    }

    private void OnSnapshotSaved(SnapshotSaved saved)
    {
        _snapshotting = false;
        var meta = saved.File.Meta;
        // Written for a core since rebuilt from disk (resume), or overtaken by a leader's snapshot:
        // the file stays (recovery may use it; Prune removes it in time), the log is not compacted.
        if (_suspended || saved.Generation != _nodeGeneration || meta.Index <= _node.CurrentSnapshot.Index || meta.Index > _node.AppliedIndex)
            return;

        var previous = _currentSnapshot;
        _node.Compact(meta.Index);
        _currentSnapshot = saved.File;
        _lastSnapshotBytes = saved.File.Length;
        // Delete the segments the PREVIOUS snapshot covers: Prune keeps that one too, and should
        // the new file turn out damaged at the next start, the older snapshot plus the log from
        // it still make a contiguous history (no acknowledged write depends on a single file).
        // The current segment is not cut short: each segment is made (zero-filled) at its full
        // size ahead of time, and cutting one every few thousand entries would write far more
        // zeros than log. Segments are small, so whole ones still go soon.
        var removed = _wal.DeleteSegmentsThrough(previous?.Meta.Index ?? 0);
        _storage.Snapshots.Prune(saved.File);
        Log.SnapshotTaken(_logger, meta.Index, meta.Term, saved.File.Length, saved.Milliseconds, removed);
    }

    // ---- leader: sending ----

    private void StartSnapshotTransfers(IReadOnlyList<Message> messages)
    {
        for (var i = 0; i < messages.Count; i++)
            if (messages[i].Type == MessageType.Snapshot)
                _sender.Start(messages[i]);
    }

    /// <summary>Called by the sender's task: the raw bytes of the snapshot the core sends now.</summary>
    Stream ISnapshotSource.OpenSnapshot(SnapshotMetadata meta)
    {
        var current = _currentSnapshot;
        if (current is null || current.Meta.Index != meta.Index || current.Meta.Term != meta.Term)
            throw new FileNotFoundException($"the snapshot at index {meta.Index} (term {meta.Term}) is no longer the current one");
        // Open files survive a later Prune (unlinked, still readable), so the transfer completes.
        return _storage.Snapshots.OpenRead(current);
    }

    // ---- follower: receiving and installing ----

    /// <summary>Called by the peer service for a leader's transfer (a gRPC thread).</summary>
    ISnapshotUpload ISnapshotSink.BeginUpload(SnapshotMetadata meta) => new Upload(_storage.Snapshots, _storage.Snapshots.BeginUpload(meta));

    /// <summary>Writes the received bytes to a temporary file; on completion verifies and renames it
    /// and loads the state machine from it, still on the receiving thread, so installing is a swap.</summary>
    private sealed class Upload(SnapshotStore store, SnapshotUpload upload) : ISnapshotUpload
    {
        public void Write(ReadOnlySpan<byte> chunk) => upload.Write(chunk);

        public object Complete()
        {
            var file = upload.Complete();
            try
            {
                return new ReceivedSnapshot(file, store.Load(file));
            }
            catch
            {
                File.Delete(file.Path);
                throw;
            }
        }

        public void Dispose() => upload.Dispose();
    }

    private void InstallSnapshot(SnapshotMetadata meta, object? data)
    {
        if (data is not ReceivedSnapshot received || received.File.Meta.Index != meta.Index)
            throw new InvalidOperationException($"the core installed the snapshot at index {meta.Index} without its data");
        // The file is already durable under its final name; discard the log the snapshot replaces.
        // A crash between the two is repaired at restart (RecoveryPlan drops a log that does not
        // continue the snapshot).
        _wal.Reset(meta.Index);
        _kv = received.Store;
        _appliedTerm = meta.Term;
        _currentSnapshot = received.File;
        _lastSnapshotBytes = received.File.Length;
        _storage.Snapshots.Prune(received.File);
        // Writes proposed while this node led and now covered by the snapshot: their outcome is
        // unknown here (the client retries with its session, which answers exactly once).
        if (_writes.Count > 0)
            foreach (var index in _writes.Keys.Where(i => i <= meta.Index).ToList())
            {
                _writes.Remove(index, out var w);
                w!.TrySetResult(Unavailable("the node installed a snapshot; the outcome is unknown, retry"));
            }
        Log.SnapshotInstalled(_logger, meta.Index, meta.Term, received.File.Length, _kv.Count);
    }

    /// <summary>Received snapshots the core did not install (older than what it has, or its log
    /// already holds their last entry) are deleted.</summary>
    private void DropUnclaimedSnapshots(object? installed)
    {
        foreach (var r in _unclaimedSnapshots)
        {
            if (ReferenceEquals(r, installed)) continue;
            try
            {
                File.Delete(r.File.Path);
            }
            catch (IOException e)
            {
                _logger.LogWarning("Could not delete the unused snapshot {Path}: {Message}", r.File.Path, e.Message);
            }
        }
        _unclaimedSnapshots.Clear();
    }
}
