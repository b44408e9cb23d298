namespace RaftServer.Hosting;

/// <summary>
/// When the node loop takes a snapshot of the state machine (then compacts the log to it).
/// Two rules, either suffices:
/// <list type="bullet">
/// <item>the log since the last snapshot has at least <see cref="MinEntries"/> entries and at
/// least as many bytes as that snapshot's file: a small state is snapshotted often (its log, the
/// disk it uses and the restart replay stay short) while a large one is rewritten only once the
/// log has grown as large as it, so snapshots never cost more than the writes they cover;</item>
/// <item>the log since the last snapshot holds at least <see cref="MaxLogBytes"/> bytes of
/// entries, whatever their number (bounds memory: the log after the snapshot is kept in memory).</item>
/// </list>
/// </summary>
public sealed record SnapshotPolicy(long MinEntries, long MaxLogBytes)
{
    public static SnapshotPolicy From(NodeSettings settings) => new(settings.SnapshotEntries, settings.SnapshotLogBytes);

    public bool ShouldSnapshot(long logEntries, long logBytes, long lastSnapshotBytes) =>
        logEntries > 0 && (logBytes >= MaxLogBytes || (logEntries >= MinEntries && logBytes >= lastSnapshotBytes));
}
