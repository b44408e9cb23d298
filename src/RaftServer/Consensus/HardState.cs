namespace RaftServer.Consensus;

/// <summary>
/// What a node must persist (fsync) before it sends the messages of the same Ready:
/// its current term, whom it voted for in that term, and the commit index it knows.
/// </summary>
public readonly record struct HardState(long Term, int VotedFor, long Commit)
{
    public const int NoVote = -1;
    public static readonly HardState Empty = new(0, NoVote, 0);
}
