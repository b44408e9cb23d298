using RaftServer.Hosting;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>
/// A simulated client: one operation at a time, following leader hints. A write carries the
/// client's session id and the next sequence number, and is sent again (the same command) to
/// another node when the one it asked fails it, until its deadline; then its outcome is unknown.
/// </summary>
internal sealed class SimClient(int id, int preferredNode)
{
    public enum Phase { Idle, AwaitWrite, RetryWrite, AwaitRead }

    public int Id { get; } = id;
    /// <summary>The client's session id (exactly-once writes).</summary>
    public ulong Session { get; } = 1_000 + (ulong)id;
    public ulong Sequence;
    public int PreferredNode = preferredNode;
    public long NextActionAt;

    public Phase State = Phase.Idle;
    public OpKind Kind;
    public int Key;
    public int Value;
    /// <summary>A compare-and-set's compared revision or value.</summary>
    public long Expected;
    /// <summary>The write's command, the same on every attempt.</summary>
    public byte[]? Data;
    public long CallTime;
    public long Deadline;
    /// <summary>The node whose driver holds the operation.</summary>
    public int Node;
    public PendingWrite? Write;
    public PendingRead? Read;
    /// <summary>What this client last read of each key (value, mod revision): what its compare-and-sets compare.</summary>
    public readonly Dictionary<int, (int Value, long Revision)> LastRead = new();
}
