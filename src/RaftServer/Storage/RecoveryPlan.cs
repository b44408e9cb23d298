using Microsoft.Extensions.Logging;
using RaftServer.Consensus;

namespace RaftServer.Storage;

/// <summary>
/// The restart rule: what the core starts from, given what the log and the newest valid snapshot
/// hold (<see cref="Combine(HardState, IReadOnlyList{Entry}, SnapshotMetadata?, out bool, out string?)"/>,
/// pure), and the restart sequence that applies it to the log on disk (<see cref="Apply"/>).
/// </summary>
public static class RecoveryPlan
{
    /// <summary>
    /// Combines what <paramref name="wal"/> recovered with the newest valid
    /// <paramref name="snapshot"/>, logs any warning, and when the log was dropped discards it on
    /// disk too (<see cref="WriteAheadLog.Reset"/> to the snapshot index), so that the entries the
    /// core saves next, from the snapshot index + 1, continue the log on disk. Call it once at
    /// start, before creating the core with the state it returns.
    /// </summary>
    public static PersistedState Apply(WriteAheadLog wal, PersistedState recovered, SnapshotMetadata? snapshot, ILogger logger)
    {
        var state = Combine(recovered.HardState, recovered.Entries, snapshot, out var logDropped, out var warning);
        if (warning is not null) logger.LogWarning("{Dir}: at restart, {Warning}", wal.Directory, warning);
        if (logDropped) wal.Reset(state.SnapshotIndex);
        return state;
    }

    /// <inheritdoc cref="Combine(HardState, IReadOnlyList{Entry}, SnapshotMetadata?, out bool, out string?)"/>
    public static PersistedState Combine(HardState hardState, IReadOnlyList<Entry> walEntries, SnapshotMetadata? snapshot) =>
        Combine(hardState, walEntries, snapshot, out _, out _);

    /// <summary>
    /// Snapshot index, term and the applied index come from <paramref name="snapshot"/> (0 without
    /// one); the entries are the log's after it. The whole log is dropped when it cannot continue
    /// the snapshot: its entry at the snapshot index has another term, it ends before the snapshot
    /// (both: a crash after a leader's snapshot was saved and before the old log was discarded),
    /// or it starts after the snapshot's next index (a gap: the snapshot the log was compacted to
    /// is lost, so entries in between are missing). The commit index is at least the snapshot's
    /// and at most the last entry kept. A term below the snapshot's (a crash before the term of
    /// the leader that sent it was saved) is raised to it with no vote: this node cannot have
    /// voted in that term, as its durable term was lower.
    /// </summary>
    /// <param name="walEntries">the log's entries, contiguous (as <see cref="WriteAheadLog.Open"/> recovers them).</param>
    /// <param name="logDropped">true when the whole log was dropped: the log on disk must be
    /// discarded too (<see cref="WriteAheadLog.Reset"/> to the snapshot index) before the core
    /// saves entries, or they would not continue it.</param>
    /// <param name="warning">what was dropped or changed and why, for the log; null when nothing was.</param>
    /// <exception cref="ArgumentException"><paramref name="walEntries"/> are not contiguous.</exception>
    public static PersistedState Combine(HardState hardState, IReadOnlyList<Entry> walEntries, SnapshotMetadata? snapshot, out bool logDropped, out string? warning)
    {
        for (var i = 1; i < walEntries.Count; i++)
            if (walEntries[i].Index != walEntries[i - 1].Index + 1)
                throw new ArgumentException($"log entries are not contiguous: {walEntries[i].Index} follows {walEntries[i - 1].Index}", nameof(walEntries));

        var snapshotIndex = snapshot?.Index ?? 0;
        var snapshotTerm = snapshot?.Term ?? 0;
        warning = null;
        IReadOnlyList<Entry> kept = [];
        if (walEntries.Count > 0)
        {
            var first = walEntries[0].Index;
            var last = walEntries[^1].Index;
            if (first > snapshotIndex + 1)
                warning = $"dropped the log ({first}..{last}): it starts after a gap from the snapshot at {snapshotIndex} (the snapshot it was compacted to is lost)";
            else if (last < snapshotIndex)
                warning = $"dropped the log ({first}..{last}): it ends before the snapshot at {snapshotIndex}";
            else if (first <= snapshotIndex && walEntries[(int)(snapshotIndex - first)].Term != snapshotTerm)
                warning = $"dropped the log ({first}..{last}): its entry {snapshotIndex} has term {walEntries[(int)(snapshotIndex - first)].Term}, the snapshot's is {snapshotTerm}";
            else
                kept = After(walEntries, snapshotIndex);
        }
        logDropped = warning is not null;

        var lastKept = snapshotIndex + kept.Count;
        var state = hardState with { Commit = Math.Clamp(hardState.Commit, snapshotIndex, lastKept) };
        if (state.Term < snapshotTerm)
        {
            warning = (warning is null ? "" : warning + "; ") + $"raised the term from {state.Term} to the snapshot's {snapshotTerm}";
            state = new HardState(snapshotTerm, HardState.NoVote, state.Commit);
        }

        return new PersistedState
        {
            HardState = state,
            Entries = kept,
            SnapshotIndex = snapshotIndex,
            SnapshotTerm = snapshotTerm,
            Applied = snapshotIndex,
            SnapshotConfiguration = snapshot?.Configuration,
        };
    }

    private static Entry[] After(IReadOnlyList<Entry> entries, long index)
    {
        var skip = (int)Math.Max(0, index - entries[0].Index + 1);
        var result = new Entry[entries.Count - skip];
        for (var i = 0; i < result.Length; i++) result[i] = entries[skip + i];
        return result;
    }
}
