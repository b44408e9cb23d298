namespace RaftServer.Consensus;

/// <summary>
/// The node's log, wholly in memory: the entries after the snapshot, addressed by index in O(1)
/// (a list offset by the snapshot index). It also tracks which entries the driver still has to
/// persist (<see cref="FirstUnstable"/>) and which committed entries it still has to apply
/// (<see cref="Delivered"/>, <see cref="Applied"/>). The driver owns durability; this class only
/// remembers what it has handed out.
/// </summary>
internal sealed class RaftLog
{
    private readonly List<Entry> entries;
    /// <summary>The configuration entries among <see cref="entries"/>, in index order (a few at most).</summary>
    private readonly List<(long Index, Configuration Config)> configs = new();

    public RaftLog(PersistedState persisted)
    {
        SnapshotIndex = persisted.SnapshotIndex;
        SnapshotTerm = persisted.SnapshotTerm;
        SnapshotConfig = persisted.SnapshotConfiguration;
        entries = new List<Entry>(Math.Max(16, persisted.Entries.Count));
        long expected = SnapshotIndex + 1;
        foreach (var entry in persisted.Entries)
        {
            if (entry.Index != expected)
                throw new ArgumentException($"persisted entries must be contiguous from {SnapshotIndex + 1}; found index {entry.Index} where {expected} was expected");
            entries.Add(entry);
            Bytes += entry.Data.Length;
            NoteConfig(entry);
            expected++;
        }
        Committed = Math.Clamp(persisted.HardState.Commit, SnapshotIndex, LastIndex);
        Applied = Math.Clamp(persisted.Applied, SnapshotIndex, Committed);
        Delivered = Applied;
        FirstUnstable = LastIndex + 1;
    }

    /// <summary>Index and term of the last entry folded into the snapshot (0, 0 without one).</summary>
    public long SnapshotIndex { get; private set; }
    public long SnapshotTerm { get; private set; }
    /// <summary>Highest index known to be committed (Figure 2: commitIndex).</summary>
    public long Committed { get; private set; }
    /// <summary>Highest index the driver has applied and acknowledged with Advance (Figure 2: lastApplied).</summary>
    public long Applied { get; set; }
    /// <summary>Highest index handed to the driver in a Ready's CommittedEntries (applied or about to be).</summary>
    public long Delivered { get; set; }
    /// <summary>First index not yet handed to the driver to persist.</summary>
    public long FirstUnstable { get; set; }
    /// <summary>Bytes of entry data in the log (after the snapshot).</summary>
    public long Bytes { get; private set; }
    /// <summary>The configuration in effect at the snapshot's index; null when none was ever recorded.</summary>
    public Configuration? SnapshotConfig { get; private set; }
    /// <summary>Changes whenever the configurations the log holds change (appended, truncated, restored).</summary>
    public int ConfigVersion { get; private set; }

    /// <summary>The last configuration the log holds (an entry's, else the snapshot's) and its index; null when there is none.</summary>
    public (long Index, Configuration Config)? LatestConfig =>
        configs.Count > 0 ? configs[^1] : SnapshotConfig is { } c ? (SnapshotIndex, c) : null;

    /// <summary>The configuration in effect at <paramref name="index"/> (the last one at or before it), or null.</summary>
    public (long Index, Configuration Config)? ConfigAt(long index)
    {
        for (int i = configs.Count - 1; i >= 0; i--)
            if (configs[i].Index <= index) return configs[i];
        return SnapshotConfig is { } c ? (SnapshotIndex, c) : null;
    }

    /// <summary>A configuration entry's data, decoded; throws for one that cannot be (a damaged or forged entry).</summary>
    public static Configuration DecodeConfig(Entry entry)
    {
        try
        {
            return Configuration.Decode(entry.Data);
        }
        catch (InvalidDataException e)
        {
            throw new ArgumentException($"the configuration entry at index {entry.Index} cannot be read: {e.Message}", e);
        }
    }

    private void NoteConfig(Entry entry)
    {
        if (entry.Kind != EntryKind.Configuration) return;
        configs.Add((entry.Index, DecodeConfig(entry)));
        ConfigVersion++;
    }

    public long FirstIndex => SnapshotIndex + 1;
    public long LastIndex => SnapshotIndex + entries.Count;
    public long LastTerm => entries.Count == 0 ? SnapshotTerm : entries[^1].Term;

    /// <summary>The term of the entry at <paramref name="index"/>; -1 when unknown (compacted or beyond the end).</summary>
    public long TermAt(long index)
    {
        if (index == SnapshotIndex) return SnapshotTerm;
        if (index < SnapshotIndex || index > LastIndex) return -1;
        return entries[(int)(index - SnapshotIndex - 1)].Term;
    }

    public Entry At(long index) => entries[(int)(index - SnapshotIndex - 1)];

    public bool Matches(long index, long term) => TermAt(index) == term;

    /// <summary>§5.4.1: a candidate's log is at least as up-to-date as ours if its last term is
    /// later, or the same with a last index at least as high.</summary>
    public bool IsUpToDate(long lastIndex, long lastTerm) =>
        lastTerm > LastTerm || (lastTerm == LastTerm && lastIndex >= LastIndex);

    /// <summary>The leader appends its own new entry.</summary>
    public void Append(Entry entry)
    {
        entries.Add(entry);
        Bytes += entry.Data.Length;
        NoteConfig(entry);
    }

    /// <summary>
    /// Figure 2, AppendEntries receiver rules 3 and 4: the entries follow <paramref name="prevIndex"/>
    /// (already checked to match). An existing entry that conflicts (same index, other term) is
    /// deleted with all that follow it; entries already present are kept, so a stale or duplicated
    /// message never truncates what a later one appended. Returns the index of the last new entry.
    /// </summary>
    public long AppendAfter(long prevIndex, IReadOnlyList<Entry> newEntries)
    {
        int count = newEntries.Count;
        for (int i = 0; i < count; i++)
        {
            var entry = newEntries[i];
            long index = prevIndex + 1 + i;
            if (index <= SnapshotIndex) continue; // covered by the snapshot: committed, so equal
            if (index <= LastIndex)
            {
                if (TermAt(index) == entry.Term) continue;
                if (index <= Committed)
                    throw new InvalidOperationException($"log conflict at committed index {index}: a committed entry would be replaced");
                TruncateFrom(index);
            }
            if (entry.Index != index)
                throw new ArgumentException($"entry index {entry.Index} where {index} was expected");
            entries.Add(entry);
            Bytes += entry.Data.Length;
            NoteConfig(entry);
        }
        return prevIndex + count;
    }

    private void TruncateFrom(long index)
    {
        int offset = (int)(index - SnapshotIndex - 1);
        for (int i = offset; i < entries.Count; i++) Bytes -= entries[i].Data.Length;
        entries.RemoveRange(offset, entries.Count - offset);
        if (FirstUnstable > index) FirstUnstable = index;
        // A configuration that is truncated away was never in effect for the cluster: the one
        // before it applies again (dissertation §4.1).
        if (configs.RemoveAll(c => c.Index >= index) > 0) ConfigVersion++;
    }

    public void CommitTo(long index)
    {
        if (index > Committed)
        {
            if (index > LastIndex) throw new InvalidOperationException($"commit {index} beyond the last index {LastIndex}");
            Committed = index;
        }
    }

    /// <summary>Entries [from, LastIndex], at most <paramref name="maxBytes"/> of data but at least one.</summary>
    public Entry[] Slice(long from, long maxBytes) => Slice(from, LastIndex, maxBytes);

    /// <summary>Entries [from, to], at most <paramref name="maxBytes"/> of data but at least one.</summary>
    public Entry[] Slice(long from, long to, long maxBytes)
    {
        if (from > to) return [];
        int start = (int)(from - SnapshotIndex - 1);
        int end = (int)(to - SnapshotIndex - 1);
        long bytes = 0;
        int last = start;
        for (; last <= end; last++)
        {
            bytes += entries[last].Data.Length;
            if (bytes > maxBytes && last > start) break;
        }
        var result = new Entry[last - start];
        entries.CopyTo(start, result, 0, result.Length);
        return result;
    }

    /// <summary>Entries the driver has not yet been asked to persist.</summary>
    public Entry[] TakeUnstable()
    {
        if (FirstUnstable > LastIndex) return [];
        var result = Slice(FirstUnstable, LastIndex, long.MaxValue);
        FirstUnstable = LastIndex + 1;
        return result;
    }

    /// <summary>Committed entries not yet handed to the driver to apply.</summary>
    public Entry[] TakeCommitted()
    {
        if (Delivered >= Committed) return [];
        var result = Slice(Delivered + 1, Committed, long.MaxValue);
        Delivered = Committed;
        return result;
    }

    /// <summary>The index of the first entry of the term of the entry at <paramref name="index"/>
    /// (the follower's conflict hint, §5.3's optimisation).</summary>
    public long FirstIndexOfTermAt(long index)
    {
        long term = TermAt(index);
        while (index - 1 > SnapshotIndex && TermAt(index - 1) == term) index--;
        return index;
    }

    /// <summary>The last index at or below <paramref name="from"/> whose term is &lt;= <paramref name="term"/>.</summary>
    public long LastIndexWithTermAtMost(long from, long term)
    {
        long index = Math.Min(from, LastIndex);
        while (index > SnapshotIndex && TermAt(index) > term) index--;
        return index;
    }

    /// <summary>Compaction hook: drop entries up to <paramref name="index"/> (already applied), keeping its term.</summary>
    public void CompactTo(long index)
    {
        if (index <= SnapshotIndex) return;
        if (index > Applied) throw new InvalidOperationException($"cannot compact to {index}: only {Applied} is applied");
        long term = TermAt(index);
        var config = ConfigAt(index);
        int count = (int)(index - SnapshotIndex);
        for (int i = 0; i < count; i++) Bytes -= entries[i].Data.Length;
        entries.RemoveRange(0, count);
        SnapshotIndex = index;
        SnapshotTerm = term;
        // The snapshot records the configuration in effect at its index; the entries it covers go.
        SnapshotConfig = config?.Config;
        configs.RemoveAll(c => c.Index <= index);
    }

    /// <summary>
    /// A snapshot from the leader replaces the whole log: it starts after (<paramref name="index"/>,
    /// <paramref name="term"/>), which is committed and (once the driver installed it) applied.
    /// Only for a snapshot newer than the commit index, so nothing committed is lost.
    /// </summary>
    public void Restore(long index, long term, Configuration? config)
    {
        if (index <= Committed) throw new InvalidOperationException($"snapshot at {index} is not newer than the commit index {Committed}");
        entries.Clear();
        Bytes = 0;
        SnapshotIndex = index;
        SnapshotTerm = term;
        configs.Clear();
        SnapshotConfig = config;
        ConfigVersion++;
        Committed = index;
        // Everything up to the snapshot is applied by installing it; what follows is delivered
        // from index + 1. Applied itself moves when the driver acknowledges the Ready (Advance).
        Delivered = index;
        FirstUnstable = index + 1;
    }
}
