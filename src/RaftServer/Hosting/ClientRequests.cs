using RaftServer.Consensus;
using RaftServer.StateMachine;

namespace RaftServer.Hosting;

/// <summary>What request handlers may read without asking the loop (published by the loop).</summary>
public sealed record NodeView(Role Role, long Term, int LeaderId, bool Suspended)
{
    public bool IsLeader => Role == Role.Leader && !Suspended;
}

public enum OutcomeCode
{
    Ok,
    NotLeader,
    Unavailable,
    Stale,
    /// <summary>A membership change or transfer named a node that is not a member.</summary>
    NotFound,
    /// <summary>A membership change would add a member that exists (or an address one uses).</summary>
    AlreadyExists,
    /// <summary>A membership change or transfer that cannot be done now: another change in flight,
    /// a learner behind, quorum would be lost, not a single-server change.</summary>
    FailedPrecondition,
    /// <summary>Refused by admission control (<see cref="Admission"/>): too many requests pending; nothing was done.</summary>
    ResourceExhausted,
    /// <summary>A write refused by the storage quota's NOSPACE alarm (<see cref="StorageQuota"/>).</summary>
    NoSpace,
}

public readonly record struct WriteOutcome(OutcomeCode Code, WriteResult Result, int LeaderHint, string? Reason);

/// <param name="Item">A Get that found its key: the key with its revisions.</param>
/// <param name="Revision">The store's revision when the read was answered.</param>
/// <param name="LeaseTtlMs">A keep-alive that renewed its lease (Found): for how long.</param>
public readonly record struct ReadOutcome(OutcomeCode Code, bool Found, ReadOnlyMemory<byte> Value, List<KeyValueItem>? Items, bool More, int LeaderHint, string? Reason,
    KeyValueItem Item = default, long Revision = 0, long LeaseTtlMs = 0);

/// <summary>
/// A client write on its way through the loop: proposed, then waiting (in
/// <see cref="PendingRequests"/>) for its entry to be applied. Completed exactly once; its
/// continuations never run on the loop thread.
/// </summary>
public sealed class PendingWrite(byte[] data) : TaskCompletionSource<WriteOutcome>(TaskCreationOptions.RunContinuationsAsynchronously)
{
    public byte[] Data { get; } = data;
    /// <summary>The index and term of the proposed entry: only that entry, applied at its index, answers the write.</summary>
    internal long Index, Term;
    /// <summary>The loop tick at which it was proposed (for the timeout).</summary>
    internal long Tick;
}

/// <summary>A client read (Get or Range), waiting for its read index to be applied.</summary>
public sealed class PendingRead() : TaskCompletionSource<ReadOutcome>(TaskCreationOptions.RunContinuationsAsynchronously)
{
    public string Key { get; init; } = "";
    public bool IsRange { get; init; }
    public string Prefix { get; init; } = "";
    public string StartAfter { get; init; } = "";
    public int Limit { get; init; }
    /// <summary>Answer from this node's state at once, without a read index.</summary>
    public bool Stale { get; init; }
    /// <summary>Not a read but a lease keep-alive, renewed by the leader once the read index
    /// confirms its leadership (<see cref="LeaseKeeper"/>); 0 for a read.</summary>
    public long KeepAliveLease { get; init; }
    /// <summary>The read index: answered once the state machine has applied it.</summary>
    internal long Index;
    /// <summary>The loop tick at which it began to wait for the state machine to apply <see cref="Index"/> (for the timeout).</summary>
    internal long Tick;
}

/// <summary>The outcome of a leadership transfer: the leader once it is done.</summary>
public readonly record struct TransferOutcome(OutcomeCode Code, int LeaderId, long Term, string? Reason);
