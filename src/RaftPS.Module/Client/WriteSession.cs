namespace RaftPS.Client;

/// <summary>A client id and the sequence of its last write. Used by one write at a time.</summary>
internal sealed class WriteSession(ulong clientId)
{
    public ulong ClientId { get; } = clientId;
    public ulong LastSequence { get; private set; }
    public ulong Next() => ++LastSequence;
}
