using RaftServer.Consensus;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>A durable snapshot: the key-value state after applying every entry up to Index.</summary>
internal sealed record SimSnapshot(long Index, long Term, IReadOnlyDictionary<int, int> Kv);

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
    /// <summary>A hard state the driver wrote without an fsync (only the commit index moved,
    /// <see cref="Ready.MustSync"/> false). The next synced Ready makes it durable; a crash before
    /// that loses it here (an OS crash's worst case; a killed process would keep it).</summary>
    private HardState? _unsynced;
    /// <summary>The log: Log[i] has index LogStart + 1 + i (normally LogStart is the snapshot's
    /// index; not after a crash between saving a received snapshot and resetting the log).</summary>
    public readonly List<Entry> Log = new();
    /// <summary>The newest snapshot (taken locally or installed from the leader), or null.</summary>
    public SimSnapshot? Snapshot;
    public long LogStart;
    public long SnapshotIndex => Snapshot?.Index ?? 0;
    public long LastLogIndex => LogStart + Log.Count;

    // ---- volatile ----
    public RaftNode? Core;
    public readonly Dictionary<int, int> Kv = new();
    /// <summary>Entries this incarnation applied, at [index - 1]; null where a snapshot (loaded at
    /// start or installed from the leader) covered the index. Count is the applied index.</summary>
    public readonly List<Entry?> AppliedLog = new();
    /// <summary>Counts starts, so a transfer report meant for an earlier incarnation is dropped.</summary>
    public int Incarnation;
    public long PausedUntil;
    public int TickPhase;
    public Role LastRole;
    public long LastTerm;

    public bool Alive => Core is not null;
    public bool IsPaused(long now) => now < PausedUntil;

    public PersistedState Persisted()
    {
        _unsynced = null; // called on restart: whatever was not fsynced did not survive the crash
        Recover();
        return new()
        {
            HardState = HardState,
            Entries = Log.ToArray(),
            SnapshotIndex = SnapshotIndex,
            SnapshotTerm = Snapshot?.Term ?? 0,
            Applied = SnapshotIndex,
        };
    }

    /// <summary>
    /// The driver's start-up rule (see PersistedState.Entries): the log must continue the
    /// snapshot. Entries at or below it go; if the log's entry at the snapshot's index has another
    /// term, or the log ends before it, the whole log goes (it was being replaced by a leader's
    /// snapshot when the node crashed).
    /// </summary>
    private void Recover()
    {
        long snapshotIndex = SnapshotIndex;
        if (LogStart == snapshotIndex) return;
        if (LogStart > snapshotIndex) throw new InvalidOperationException($"node {Id}: the log starts after {LogStart}, beyond the snapshot {snapshotIndex}");
        if (LogAt(snapshotIndex) is { } entry && entry.Term == Snapshot!.Term)
            Log.RemoveRange(0, (int)(snapshotIndex - LogStart));
        else
            Log.Clear();
        LogStart = snapshotIndex;
    }

    /// <summary>A crash half-way through step 0 of a Ready: the received snapshot is saved (renamed
    /// into place) but the old log not yet discarded, nor anything else persisted.</summary>
    public void SaveSnapshotOnly(Ready ready) => Snapshot = (SimSnapshot)ready.SnapshotData!;

    /// <summary>The entry at <paramref name="index"/> in the durable log, or null.</summary>
    public Entry? LogAt(long index) => index > LogStart && index <= LastLogIndex ? Log[(int)(index - LogStart - 1)] : null;

    public void Persist(Ready ready)
    {
        if (ready.Snapshot is { } snapshot)
        {
            if (snapshot.Index <= SnapshotIndex)
                throw new InvalidOperationException($"node {Id}: installing a snapshot at {snapshot.Index} over a newer one at {SnapshotIndex}");
            // Step 0 of the Ready: the received snapshot becomes ours and replaces the whole log.
            var data = (SimSnapshot)ready.SnapshotData!;
            if (data.Index != snapshot.Index || data.Term != snapshot.Term)
                throw new InvalidOperationException($"node {Id}: the snapshot data ({data.Index}/{data.Term}) is not the one the core installs ({snapshot.Index}/{snapshot.Term})");
            Snapshot = data;
            Log.Clear();
            LogStart = data.Index;
        }
        if (ready.MustSync)
        {
            if (ready.HardState is { } synced) HardState = synced;
            else if (_unsynced is { } earlier) HardState = earlier; // the fsync covers the earlier write
            _unsynced = null;
        }
        else if (ready.HardState is { } commitOnly)
        {
            if (commitOnly.Term != HardState.Term || commitOnly.VotedFor != HardState.VotedFor)
                throw new InvalidOperationException($"node {Id}: a Ready changes the term or vote ({commitOnly}) without MustSync");
            _unsynced = commitOnly;
        }
        if (ready.Entries.Count == 0) return;
        int at = (int)(ready.Entries[0].Index - LogStart - 1);
        if (at < 0) throw new InvalidOperationException($"node {Id}: persisting entry {ready.Entries[0].Index} at or below the snapshot {LogStart}");
        if (at < Log.Count) Log.RemoveRange(at, Log.Count - at);
        if (at != Log.Count) throw new InvalidOperationException($"node {Id}: persisted entries would leave a gap at index {LastLogIndex + 1}");
        Log.AddRange(ready.Entries);
    }

    /// <summary>Saves a snapshot of the state machine at the applied index and drops the durable
    /// log up to it (atomically, as a temp file + rename + segment deletion does).</summary>
    public SimSnapshot TakeSnapshot(long term)
    {
        long index = AppliedLog.Count;
        if (index > LastLogIndex) throw new InvalidOperationException($"node {Id}: applied {index} beyond its durable log {LastLogIndex}");
        var snapshot = new SimSnapshot(index, term, new Dictionary<int, int>(Kv));
        int drop = (int)Math.Min(index - LogStart, Log.Count);
        Log.RemoveRange(0, drop);
        LogStart = index;
        Snapshot = snapshot;
        return snapshot;
    }

    /// <summary>Loads a snapshot into the state machine: applied index = its index.</summary>
    public void LoadSnapshot(SimSnapshot snapshot)
    {
        Kv.Clear();
        foreach (var (key, value) in snapshot.Kv) Kv[key] = value;
        while (AppliedLog.Count < snapshot.Index) AppliedLog.Add(null);
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
