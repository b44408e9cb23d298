namespace RaftServer.Consensus;

/// <summary>
/// Snapshots (§7, thesis §5): a peer whose next entry is compacted away gets the leader's
/// snapshot instead of Appends (InstallSnapshot). The core handles metadata only; the driver moves
/// the data. Leader: <see cref="SendSnapshot"/> puts the peer in Snapshot state until
/// <see cref="ReportSnapshot"/>, the peer's acknowledgement or a timeout. Follower:
/// <see cref="HandleSnapshot"/> installs a newer snapshot through <see cref="Ready.Snapshot"/>.
/// </summary>
public sealed partial class RaftNode
{
    /// <summary>Follower: a snapshot to hand the driver in the next Ready.</summary>
    private SnapshotMetadata? pendingSnapshot;
    private object? pendingSnapshotData;

    private int SnapshotTimeoutTicks =>
        options.SnapshotTimeoutTicks > 0 ? options.SnapshotTimeoutTicks : 5 * options.ElectionTicks;

    /// <summary>Entries in the log after the snapshot (for the driver's compaction policy).</summary>
    public long LogEntryCount => log.LastIndex - log.SnapshotIndex;
    /// <summary>Bytes of entry data in the log after the snapshot (for the driver's compaction policy).</summary>
    public long LogBytes => log.Bytes;

    /// <summary>The snapshot the leader sends now: the one the last <see cref="Compact"/> left.</summary>
    public SnapshotMetadata CurrentSnapshot => new(log.SnapshotIndex, log.SnapshotTerm, log.SnapshotConfig ?? bootstrap);

    /// <summary>
    /// The driver's report on a snapshot transfer to <paramref name="peer"/> that a Snapshot message
    /// of this node started: <paramref name="success"/> when the peer received all of it (the
    /// peer's core then answers with an AppendResponse), false when the transfer failed or was
    /// abandoned. Either way the leader leaves Snapshot state and probes the peer at its next
    /// heartbeat answer: after a success just past the snapshot, after a failure from what the
    /// peer is known to hold (so a snapshot is sent again if still needed). Ignored when not
    /// leader or no snapshot is in flight to the peer.
    /// </summary>
    public void ReportSnapshot(int peer, bool success)
    {
        if (role != Role.Leader) return;
        var pr = ProgressOf(peer);
        if (pr is null || pr == self || pr.State != ReplicationState.Snapshot) return;
        EndSnapshot(pr, success);
    }

    private static void EndSnapshot(Progress pr, bool success)
    {
        if (!success) pr.PendingSnapshot = 0;
        pr.BecomeProbe();
        // Wait for a heartbeat answer (or the peer's acknowledgement) before probing: etcd's rule,
        // so a peer that is down is not sent a snapshot after snapshot.
        pr.ProbeSent = true;
    }

    /// <summary>Leader: the peer needs entries that are compacted away. Sends the snapshot's
    /// metadata (the driver streams the data) unless the peer was not heard from lately.</summary>
    private bool SendSnapshot(Progress pr)
    {
        if (!pr.RecentlyActive) return false;
        var snapshot = CurrentSnapshot;
        Send(new Message
        {
            Type = MessageType.Snapshot, From = Id, To = pr.Id, Term = term,
            Index = snapshot.Index, LogTerm = snapshot.Term, Commit = log.Committed, Snapshot = snapshot,
        });
        pr.BecomeSnapshot(snapshot.Index);
        return true;
    }

    /// <summary>Leader, each tick: a transfer nobody reported on for too long counts as failed.</summary>
    private void TickSnapshots()
    {
        foreach (var pr in progress)
        {
            if (pr.State != ReplicationState.Snapshot) continue;
            if (++pr.SnapshotElapsed >= SnapshotTimeoutTicks) EndSnapshot(pr, success: false);
        }
    }

    /// <summary>Leader: an acknowledgement from a peer in Snapshot state; leave the state once the
    /// peer holds the snapshot (or otherwise reached a point the log can continue from).</summary>
    private void MaybeEndSnapshot(Progress pr)
    {
        if (pr.Match >= pr.PendingSnapshot || pr.Match >= log.SnapshotIndex)
        {
            // Replicate when the log continues from the peer's match; otherwise (compacted again
            // meanwhile) probe, which sends the newer snapshot.
            if (log.TermAt(pr.Match) >= 0) pr.BecomeReplicate();
            else
            {
                pr.PendingSnapshot = 0;
                pr.BecomeProbe();
            }
        }
    }

    /// <summary>
    /// Follower: the leader's snapshot (thesis §5, InstallSnapshot receiver). Not newer than our
    /// commit index: ignore it and tell the leader our commit index. Our log holds its last entry:
    /// keep the log (it matches up to there) and commit to it. Otherwise the snapshot replaces
    /// the whole log and is handed to the driver to install.
    /// </summary>
    private void HandleSnapshot(Message m)
    {
        var snapshot = m.Snapshot;
        if (snapshot is null) return; // malformed: nothing to install
        long index;
        if (snapshot.Index <= log.Committed)
        {
            index = log.Committed;
        }
        else if (log.Matches(snapshot.Index, snapshot.Term))
        {
            // Log Matching: our log equals the leader's up to the snapshot's last entry, which is
            // committed. The entries will be applied from the log as usual.
            log.CommitTo(snapshot.Index);
            SyncConfiguration();
            index = snapshot.Index;
        }
        else
        {
            log.Restore(snapshot.Index, snapshot.Term, snapshot.Configuration);
            SyncConfiguration();
            pendingSnapshot = snapshot;
            pendingSnapshotData = m.SnapshotData;
            index = snapshot.Index;
        }
        Send(new Message { Type = MessageType.AppendResponse, From = Id, To = m.From, Term = term, Index = index });
    }
}
