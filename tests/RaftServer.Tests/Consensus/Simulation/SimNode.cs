using RaftServer.Consensus;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>
/// One simulated server: what it persisted (survives crashes), and the volatile part (the core
/// and the key-value state machine, lost on a crash and rebuilt from the persisted log on restart).
/// </summary>
internal sealed class SimNode
{
    public SimNode(int id) => Id = id;

    public int Id { get; }

    // ---- durable: written only by handling a Ready, exactly like the real driver's fsync ----
    public HardState HardState = HardState.Empty;
    public readonly List<Entry> Log = new();

    // ---- volatile ----
    public RaftNode? Core;
    public readonly Dictionary<int, int> Kv = new();
    /// <summary>Entries this incarnation applied, at [index - 1].</summary>
    public readonly List<Entry> AppliedLog = new();
    public long PausedUntil;
    public int TickPhase;
    public Role LastRole;
    public long LastTerm;

    public bool Alive => Core is not null;
    public bool IsPaused(long now) => now < PausedUntil;

    public PersistedState Persisted() => new()
    {
        HardState = HardState,
        Entries = Log.ToArray(),
    };

    public void Persist(Ready ready)
    {
        if (ready.HardState is { } hardState) HardState = hardState;
        if (ready.Entries.Count == 0) return;
        int at = (int)ready.Entries[0].Index - 1;
        if (at < Log.Count) Log.RemoveRange(at, Log.Count - at);
        if (at != Log.Count) throw new InvalidOperationException($"node {Id}: persisted entries would leave a gap at index {Log.Count + 1}");
        Log.AddRange(ready.Entries);
    }

    public void LoseVolatileState()
    {
        Core = null;
        Kv.Clear();
        AppliedLog.Clear();
        PausedUntil = 0;
        LastRole = Role.Follower;
    }

    public static byte[] Encode(int key, int value)
    {
        var data = new byte[8];
        BitConverter.TryWriteBytes(data.AsSpan(0, 4), key);
        BitConverter.TryWriteBytes(data.AsSpan(4, 4), value);
        return data;
    }

    public static (int Key, int Value) Decode(byte[] data) =>
        (BitConverter.ToInt32(data, 0), BitConverter.ToInt32(data, 4));
}
