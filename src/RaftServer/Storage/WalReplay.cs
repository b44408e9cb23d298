using RaftServer.Consensus;

namespace RaftServer.Storage;

/// <summary>
/// Rebuilds the log from its records in write order. The log starts where the first entry (or
/// LogBase record) says, so a log whose oldest segments were deleted after a snapshot recovers;
/// from there entries must be contiguous: an entry at an index the log has replaces it and every
/// later one, and one past the end (a gap) or before the start is damage. One gap is not: at the
/// start of a segment, when every missing entry is covered by the snapshot the node starts from
/// (<paramref name="compactedThrough"/>). Compaction unlinks several old segments and then fsyncs the
/// directory once; a crash in between may keep an older segment whose newer neighbour's unlink
/// reached the disk. The entries before such a gap are dropped (<see cref="SkippedGap"/>).
/// </summary>
/// <param name="compactedThrough">The index of the snapshot the node starts from (0 without one).</param>
internal sealed class WalReplay(long compactedThrough = 0)
{
    private readonly List<Entry> _entries = [];
    private long? _base;

    public HardState HardState { get; set; } = HardState.Empty;
    /// <summary>The index before the first entry (0 for a log that was never compacted).</summary>
    public long BaseIndex => _base ?? 0;
    public long LastIndex => BaseIndex + _entries.Count;
    public List<Entry> Entries => _entries;
    /// <summary>The last gap covered by the snapshot that the replay stepped over (entries <c>From</c> to
    /// <c>To</c> were missing; what came before was dropped), or null.</summary>
    public (long From, long To)? SkippedGap { get; private set; }

    /// <summary>Adds an entry; returns why it cannot follow the log, or null.</summary>
    /// <param name="firstOfSegment">The first entry or LogBase record of its segment: a gap before it may be a compaction cut short.</param>
    public string? AddEntry(Entry entry, bool firstOfSegment = false)
    {
        if (entry.Index < 1) return $"entry index {entry.Index} is below 1";
        _base ??= entry.Index - 1;
        if (entry.Index <= _base)
            return $"entry {entry.Index} comes before the start of the log ({_base + 1})";
        if (entry.Index > LastIndex + 1)
        {
            if (!firstOfSegment || entry.Index - 1 > compactedThrough)
                return $"entry {entry.Index} does not follow the log's last index {LastIndex}" +
                    (firstOfSegment ? $" (the missing entries are not all in the snapshot, which ends at {compactedThrough})" : "");
            SkippedGap = (LastIndex + 1, entry.Index - 1);
            SetBase(entry.Index - 1);
        }
        if (entry.Index <= LastIndex)
            _entries.RemoveRange((int)(entry.Index - _base - 1), (int)(LastIndex - entry.Index + 1));
        _entries.Add(entry);
        return null;
    }

    /// <summary>A LogBase record: everything before is discarded; the next entry is <paramref name="index"/> + 1.</summary>
    public void SetBase(long index)
    {
        _entries.Clear();
        _base = index;
    }
}
