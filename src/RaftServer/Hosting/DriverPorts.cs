using RaftServer.Consensus;
using RaftServer.StateMachine;

namespace RaftServer.Hosting;

// What the RaftDriver needs from the rest of the node, as small interfaces (the peers' are in
// Transport/: IMessageSender, IPeerSockets): the server plugs in
// the write-ahead log, the peer transport and the snapshot store; the in-process driver tests
// plug in fakes that record what happened in which order; the simulator plugs in its simulated
// disk and network. The driver's rules (what is persisted before what is sent, what answers
// which client) are then the same code in all three.

/// <summary>The durable log each Ready is persisted to (<see cref="Storage.WriteAheadLog"/>).</summary>
public interface ILogStore
{
    /// <summary>The hard state last saved.</summary>
    HardState HardState { get; }

    /// <summary>Bytes of log on disk (for Status).</summary>
    long SizeBytes { get; }

    /// <summary>Appends <paramref name="entries"/> (replacing any at the same or later indexes) and
    /// <paramref name="hardState"/>, with one fsync when <paramref name="sync"/>; returns once they are durable.</summary>
    void Save(HardState? hardState, IReadOnlyList<Entry> entries, bool sync);

    /// <summary>A leader's snapshot at <paramref name="snapshotIndex"/> (already durable) replaced the
    /// whole log: discard it; the next entries saved continue from the snapshot.</summary>
    void Reset(long snapshotIndex);
}

/// <summary>Snapshots as the driver needs them: taking them, sending the current one, installing a leader's.</summary>
public interface ISnapshotPort
{
    /// <summary>The core was (re)built from disk: the snapshot its log starts after is <paramref name="recovered"/>'s.</summary>
    void Restarted(RecoveredNode recovered);

    /// <summary>After applying: take a snapshot if the policy says so (the core's log is compacted once it is durable).</summary>
    void AfterApply(RaftNode node, KvStore state, long appliedTerm);

    /// <summary>A snapshot this node took is durable: compact the core and the log to it
    /// (<paramref name="node"/> is null while suspended: nothing is compacted then).</summary>
    void Saved(SnapshotSaved saved, RaftNode? node);

    /// <summary>Writing a snapshot failed: say so; a later attempt follows.</summary>
    void SaveFailed(SnapshotSaveFailed failed);

    /// <summary>A received snapshot's data (<see cref="Message.SnapshotData"/>) was stepped into the core this turn.</summary>
    void Received(object data);

    /// <summary>
    /// Ready step 0: the core installs the leader's snapshot <paramref name="meta"/> whose data is
    /// <paramref name="data"/>. Make it this node's durable snapshot and return the state machine
    /// it holds; the driver then discards the log and swaps the state machine.
    /// </summary>
    KvStore Install(SnapshotMetadata meta, object? data);

    /// <summary>Deletes the data of snapshots received this turn that the core did not install.</summary>
    void DropUnclaimed(object? installed);

    /// <summary>Starts streaming the snapshot each Snapshot message among <paramref name="messages"/> names.</summary>
    void SendSnapshots(IReadOnlyList<Message> messages);

    /// <summary>Leadership lost or suspended: cancel every transfer (each reports failure).</summary>
    void CancelTransfers();
}
