namespace RaftServer.Consensus;

public enum EntryKind : byte
{
    /// <summary>A state-machine command; Data is the encoded command.</summary>
    Command = 0,
    /// <summary>Appended by a new leader so it can commit an entry of its own term.</summary>
    NoOp = 1,
    /// <summary>Reserved for membership changes.</summary>
    Configuration = 2,
}

/// <summary>One log entry. Immutable; Data is never null (empty for a no-op).</summary>
public sealed record Entry(long Index, long Term, EntryKind Kind, byte[] Data)
{
    public static Entry NoOp(long index, long term) => new(index, term, EntryKind.NoOp, []);
}
