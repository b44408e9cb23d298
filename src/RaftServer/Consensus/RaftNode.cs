namespace RaftServer.Consensus;

/// <summary>
/// Raft as a deterministic state machine (model: etcd-io/raft's RawNode). No I/O, threads or
/// clocks: the driver calls Tick() on a timer, Step() for each received message, Propose() and
/// ReadIndex() for clients, and handles each Ready (persist, send, apply) before Advance().
/// </summary>
public sealed class RaftNode
{
    public RaftNode(RaftOptions options, PersistedState persisted) => throw new NotImplementedException();

    public int Id => throw new NotImplementedException();
    public Role Role => throw new NotImplementedException();
    public long Term => throw new NotImplementedException();
    public int LeaderId => throw new NotImplementedException();
    public long CommitIndex => throw new NotImplementedException();
    public long AppliedIndex => throw new NotImplementedException();
    public long FirstIndex => throw new NotImplementedException();
    public long LastIndex => throw new NotImplementedException();
    public IReadOnlyList<int> Members => throw new NotImplementedException();
    /// <summary>Each peer's progress while leader; empty otherwise.</summary>
    public IReadOnlyList<PeerProgress> Progress => throw new NotImplementedException();

    /// <summary>One tick of the logical clock.</summary>
    public void Tick() => throw new NotImplementedException();
    /// <summary>A message from a peer.</summary>
    public void Step(Message message) => throw new NotImplementedException();
    /// <summary>Append a command if leader.</summary>
    public ProposeResult Propose(byte[] command) => throw new NotImplementedException();
    /// <summary>Ask for a linearizable read index; the answer comes as a ReadState with this id.
    /// False when it cannot start (no leader known).</summary>
    public bool ReadIndex(long requestId) => throw new NotImplementedException();
    /// <summary>Hand leadership to <paramref name="target"/> or, when null, the most up-to-date peer.</summary>
    public bool TransferLeadership(int? target) => throw new NotImplementedException();

    public bool HasReady => throw new NotImplementedException();
    public Ready GetReady() => throw new NotImplementedException();
    /// <summary>The driver has persisted, sent and applied everything in <paramref name="ready"/>.</summary>
    public void Advance(Ready ready) => throw new NotImplementedException();
}
