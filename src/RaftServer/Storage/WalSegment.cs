namespace RaftServer.Storage;

/// <summary>One segment file of the write-ahead log and what compaction needs to know of it.</summary>
internal sealed class WalSegment(long seq, string path)
{
    public long Seq { get; } = seq;
    public string Path { get; } = path;
    public long Size { get; set; }
    /// <summary>The highest entry index written to this segment (0: no entry). The segment may be
    /// deleted once a snapshot covers it.</summary>
    public long MaxIndex { get; set; }
    /// <summary>Where the log would start if this were the oldest segment: the index before its
    /// first entry, or the index of its first LogBase record, whichever comes first; null if it
    /// has neither.</summary>
    public long? StartBase { get; set; }

    public void NoteEntry(long index)
    {
        StartBase ??= index - 1;
        if (index > MaxIndex) MaxIndex = index;
    }

    public void NoteLogBase(long index) => StartBase ??= index;
}
