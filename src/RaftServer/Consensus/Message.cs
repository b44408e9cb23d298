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
    /// <summary>Append: index of the entry before Entries. Votes: last log index. AppendResponse:
    /// index acknowledged, or on reject the rejected previous index. ReadIndexResponse: the read
    /// index, -1 when refused.</summary>
    public long Index { get; init; }
    public IReadOnlyList<Entry> Entries { get; init; } = [];
    public long Commit { get; init; }
    public bool Reject { get; init; }
    /// <summary>AppendResponse reject: the follower's first index of the conflicting term, never
    /// at or below its commit index (or its last index + 1 when its log is too short).</summary>
    public long RejectHint { get; init; }
    /// <summary>AppendResponse reject: the conflicting term; 0 when the follower's log is too short.</summary>
    public long HintTerm { get; init; }
    /// <summary>
    /// ReadIndex / ReadIndexResponse: the follower's read request id. Heartbeat /
    /// HeartbeatResponse: the leader's read-index round, echoed so a majority of answers
    /// confirms every read of that round. Vote: <see cref="RaftNode.TransferVoteContext"/> when a
    /// leadership transfer caused the election (peers then answer despite the leader lease).
    /// </summary>
    public long Context { get; init; }
    /// <summary>
    /// Snapshot (leader to follower): the snapshot the peer must install, metadata only. The
    /// sending driver streams the data of its snapshot at <see cref="SnapshotMetadata.Index"/> out
    /// of band (in chunks); the receiving driver, once it holds the complete data, steps a
    /// Snapshot message carrying this metadata (and the leader's From, To and Term) into its core;
    /// never before the data is complete (the core may tell the driver to install it at once).
    /// The follower answers with an AppendResponse (SnapshotResponse is unused). Null for every
    /// other type.
    /// </summary>
    public SnapshotMetadata? Snapshot { get; init; }
    /// <summary>
    /// Snapshot, receiving side only: a handle to the received data (a file path, an object), opaque
    /// to the core, which hands it back in <see cref="Ready.SnapshotData"/> if it decides to
    /// install the snapshot. Never sent on the wire.
    /// </summary>
    public object? SnapshotData { get; init; }
}
