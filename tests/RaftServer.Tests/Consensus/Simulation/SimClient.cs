using RaftServer.Hosting;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>A simulated client: one operation at a time, following leader hints, giving up on an
/// operation after a deadline (a write's outcome is then unknown).</summary>
internal sealed class SimClient(int id, int preferredNode)
{
    public enum Phase { Idle, AwaitWrite, AwaitRead }

    public int Id { get; } = id;
    public int PreferredNode = preferredNode;
    public long NextActionAt;

    public Phase State = Phase.Idle;
    public bool IsWrite;
    public int Key;
    public int Value;
    public long CallTime;
    public long Deadline;
    /// <summary>The node whose driver holds the operation.</summary>
    public int Node;
    public PendingWrite? Write;
    public PendingRead? Read;
}
