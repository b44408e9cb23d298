using RaftServer.Consensus;

namespace RaftServer.Storage;

/// <summary>
/// Rebuilds the log from its records in write order. The log starts where the first entry (or
/// LogBase record) says, so a log whose oldest segments were deleted after a snapshot recovers;
/// from there entries must be contiguous: an entry at an index the log has replaces it and every
/// later one, and one past the end (a gap) or before the start is damage.
/// </summary>
internal sealed class WalReplay
{
    private readonly List<Entry> _entries = [];
    private long? _base;

    public HardState HardState { get; set; } = HardState.Empty;
    /// <summary>The index before the first entry (0 for a log that was never compacted).</summary>
    public long BaseIndex => _base ?? 0;
    public long LastIndex => BaseIndex + _entries.Count;
    public List<Entry> Entries => _entries;

    /// <summary>Adds an entry; returns why it cannot follow the log, or null.</summary>
    public string? AddEntry(Entry entry)
    {
        if (entry.Index < 1) return $"entry index {entry.Index} is below 1";
        _base ??= entry.Index - 1;
        if (entry.Index <= _base)
            return $"entry {entry.Index} comes before the start of the log ({_base + 1})";
        if (entry.Index > LastIndex + 1)
            return $"entry {entry.Index} does not follow the log's last index {LastIndex}";
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
