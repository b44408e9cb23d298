namespace RaftServer.Consensus;

public enum Role { Follower, PreCandidate, Candidate, Leader }

/// <summary>Volatile state, for logging and Status: not persisted.</summary>
public readonly record struct SoftState(Role Role, long Term, int LeaderId)
{
    public const int NoLeader = -1;
}

/// <summary>
/// A linearizable read the core has cleared: answer it once the state machine has applied
/// <see cref="Index"/>. <see cref="Index"/> &lt; 0 means the read failed (leadership lost, no
/// leader): answer Unavailable.
/// </summary>
public readonly record struct ReadState(long RequestId, long Index);

/// <summary>This node granted its vote to <see cref="Candidate"/> in <see cref="Term"/> (a real
/// vote, not a pre-vote; a candidate's vote for itself is not reported). For the log line
/// "Voted for node X"; the vote is durable once this Ready's HardState is persisted.</summary>
public readonly record struct VoteGrant(int Candidate, long Term);

/// <summary>
/// The work the driver must do, in this order, then call <see cref="RaftNode.Advance"/>:
/// 0. if <see cref="Snapshot"/> is set (a follower installs a snapshot from the leader): make the
///    received snapshot data (<see cref="SnapshotData"/>) this node's durable snapshot (write,
///    fsync, atomic rename), discard the whole log (every entry, whatever its index: the
///    snapshot replaces it and <see cref="Entries"/> continue from Snapshot.Index + 1), and load
///    the snapshot into the state machine (applied index = Snapshot.Index); fail (Unavailable,
///    outcome unknown) client writes waiting on an index the snapshot covers. All of it before
///    step 1 persists anything and before any message of this Ready is sent;
/// 1. persist <see cref="HardState"/> (if set) and append <see cref="Entries"/> (entries at an index
///    the log already has replace that entry and every one after it), with one fsync when
///    <see cref="MustSync"/>; a HardState that only moves the commit index is written without
///    one (see MustSync);
/// 2. send <see cref="Messages"/>;
/// 3. apply <see cref="CommittedEntries"/> in order, then answer <see cref="ReadStates"/> whose
///    index is applied.
/// </summary>
public sealed class Ready
{
    public HardState? HardState { get; init; }
    public IReadOnlyList<Entry> Entries { get; init; } = [];
    public IReadOnlyList<Message> Messages { get; init; } = [];
    public IReadOnlyList<Entry> CommittedEntries { get; init; } = [];
    public IReadOnlyList<ReadState> ReadStates { get; init; } = [];
    /// <summary>Set when role, term or leader changed since the last Ready.</summary>
    public SoftState? SoftState { get; init; }
    /// <summary>Set when this node granted its vote since the last Ready (HardState.VotedFor
    /// changed to another node). Log it after persisting.</summary>
    public VoteGrant? VoteGranted { get; init; }
    /// <summary>A snapshot from the leader to install before anything else of this Ready (step 0
    /// above); null almost always. When the core does not install a snapshot it was stepped (old,
    /// or the log already holds its last entry), it never appears here: the driver drops the
    /// received data.</summary>
    public SnapshotMetadata? Snapshot { get; init; }
    /// <summary>With <see cref="Snapshot"/>: the <see cref="Message.SnapshotData"/> the driver
    /// stepped in with it.</summary>
    public object? SnapshotData { get; init; }
    /// <summary>The configuration in effect, when it changed since the last Ready (a configuration
    /// entry appended or truncated away, a snapshot installed): the driver connects to new
    /// members and drops the links to removed ones before it sends this Ready's messages.</summary>
    public Configuration? Configuration { get; init; }

    /// <summary>
    /// Step 1 must fsync before the messages go: the term or the vote changed, or there are
    /// entries or a snapshot. A HardState that differs from the last one only in its commit index
    /// needs no fsync (the commit index is volatile state in the Raft paper's Figure 2: a node
    /// that restarts with an older one learns the rest from the leader, and nothing it answered
    /// depended on it). Syncing it anyway cost a leader a second fsync per write before it could
    /// apply and answer, and a follower one per heartbeat that carried a new commit index.
    /// </summary>
    public bool MustSync { get; init; }
}
