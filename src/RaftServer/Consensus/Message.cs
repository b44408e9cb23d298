namespace RaftServer.Consensus;

public enum MessageType
{
    PreVote, PreVoteResponse,
    Vote, VoteResponse,
    Append, AppendResponse,
    Heartbeat, HeartbeatResponse,
    ReadIndex, ReadIndexResponse,
    TimeoutNow,
    Snapshot, SnapshotResponse,
}

/// <summary>
/// A Raft message between two nodes. One flat shape for every type (as etcd's raftpb.Message);
/// Transport/ maps it 1:1 to protos/raft.proto's RaftMessage.
/// </summary>
public sealed record Message
{
    public required MessageType Type { get; init; }
    public required int From { get; init; }
    public required int To { get; init; }
    public long Term { get; init; }
    /// <summary>Append: term of the entry before Entries. Votes: the candidate's last log term.</summary>
    public long LogTerm { get; init; }
    /// <summary>Append: index of the entry before Entries. Votes: last log index. Responses: index acknowledged.</summary>
    public long Index { get; init; }
    public IReadOnlyList<Entry> Entries { get; init; } = [];
    public long Commit { get; init; }
    public bool Reject { get; init; }
    /// <summary>AppendResponse reject: the follower's first index of the conflicting term (or its last index + 1).</summary>
    public long RejectHint { get; init; }
    /// <summary>AppendResponse reject: the conflicting term; 0 when the follower's log is too short.</summary>
    public long HintTerm { get; init; }
    /// <summary>Read index: the request id, carried through the heartbeat round that confirms leadership.</summary>
    public long Context { get; init; }
}
