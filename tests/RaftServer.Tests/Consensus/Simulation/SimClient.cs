namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>A simulated client: one operation at a time, following leader hints, giving up on an
/// operation after a deadline (a write's outcome is then unknown).</summary>
internal sealed class SimClient
{
    public enum Phase { Idle, AwaitApply, AwaitReadState, AwaitApplied }

    public SimClient(int id, int preferredNode)
    {
        Id = id;
        PreferredNode = preferredNode;
    }

    public int Id { get; }
    public int PreferredNode;
    public long NextActionAt;

    public Phase State = Phase.Idle;
    public bool IsWrite;
    public int Key;
    public int Value;
    public long CallTime;
    public long Deadline;
    public int Node;
    /// <summary>A write: the proposed entry's index and term. A read: the read index.</summary>
    public long Index;
    public long Term;
    public long RequestId;
}
