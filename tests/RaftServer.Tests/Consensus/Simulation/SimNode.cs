using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.StateMachine;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>A durable snapshot: the state machine's image after applying every entry up to Index,
/// and the configuration in effect there.</summary>
/// <param name="ClusterId">The taker's cluster id, as the server's snapshot header carries it.</param>
internal sealed record SimSnapshot(long Index, long Term, KvImage Image, Configuration Configuration, ulong ClusterId = 0);

/// <summary>A simulated process crash, thrown out of the driver by the simulated disk; the
/// simulation catches it and crashes the node.</summary>
internal sealed class SimulatedCrash : Exception;

/// <summary>
/// One simulated server: what it persisted (survives crashes: it is the driver's
/// <see cref="ILogStore"/>, the simulated disk) and the volatile part (the server's own
/// <see cref="RaftDriver"/> with its core and key-value store, lost on a crash and rebuilt from
/// the persisted log on restart).
/// </summary>
internal sealed class SimNode(int id) : ILogStore
{
    public int Id { get; } = id;

    // ---- durable: written only by the driver's saves ----
    public HardState HardState { get; private set; } = HardState.Empty;
    /// <summary>A hard state the driver wrote without an fsync (only the commit index moved,
    /// <see cref="Ready.MustSync"/> false). The next synced save makes it durable; a crash before
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

    /// <summary>Set by the simulation before a save: crash before the data is on disk (an fsync
    /// that never returned) or right after it (before anything later in the Ready was sent).</summary>
    public bool CrashBeforeNextSave, CrashAfterNextSave;

    // ---- volatile ----
    public RaftDriver? Driver;
    /// <summary>The host's runtime membership of the current incarnation (what its transport admits).</summary>
    public RaftServer.Cluster.Membership? Membership;
    /// <summary>The cluster id this node made durable (its DIR/cluster-id file): kept across crashes.</summary>
    public ulong DurableClusterId;
    public RaftNode? Core => Driver?.Node;
    /// <summary>Entries this incarnation applied, at [index - 1]; null where a snapshot (loaded at
    /// start or installed from the leader) covered the index. Count is the applied index.</summary>
    public readonly List<Entry?> AppliedLog = new();
    /// <summary>Counts starts, so a transfer report meant for an earlier incarnation is dropped.</summary>
    public int Incarnation;
    public long PausedUntil;
    public int TickPhase;
    public Role LastRole;
    public long LastTerm;
    /// <summary>The highest term of any message this node sent (lost on the way or not).</summary>
    public long SentTerm;

    public bool Alive => Driver is not null;
    /// <summary>Started anew after its disk was wiped: it bootstraps nothing and waits to be added.</summary>
    public bool Joins;
    public bool IsPaused(long now) => now < PausedUntil;

    // ---- ILogStore ----

    public long SizeBytes => Log.Count;

    public void Save(HardState? hardState, IReadOnlyList<Entry> entries, bool sync)
    {
        if (CrashBeforeNextSave)
        {
            CrashBeforeNextSave = false;
            throw new SimulatedCrash();
        }
        if (sync)
        {
            if (hardState is { } synced) HardState = synced;
            else if (_unsynced is { } earlier) HardState = earlier; // the fsync covers the earlier write
            _unsynced = null;
        }
        else if (hardState is { } commitOnly)
        {
            if (commitOnly.Term != HardState.Term || commitOnly.VotedFor != HardState.VotedFor)
                throw new InvalidOperationException($"node {Id}: a save changes the term or vote ({commitOnly}) without an fsync");
            _unsynced = commitOnly;
        }
        if (entries.Count > 0)
        {
            int at = (int)(entries[0].Index - LogStart - 1);
            if (at < 0) throw new InvalidOperationException($"node {Id}: persisting entry {entries[0].Index} at or below the snapshot {LogStart}");
            if (at < Log.Count) Log.RemoveRange(at, Log.Count - at);
            if (at != Log.Count) throw new InvalidOperationException($"node {Id}: persisted entries would leave a gap at index {LastLogIndex + 1}");
            Log.AddRange(entries);
        }
        if (CrashAfterNextSave)
        {
            CrashAfterNextSave = false;
            throw new SimulatedCrash();
        }
    }

    /// <summary>The leader's snapshot (already saved by <see cref="Simulation"/>'s install) replaces the whole log.</summary>
    public void Reset(long snapshotIndex)
    {
        Log.Clear();
        LogStart = snapshotIndex;
    }

    // ---- restart ----

    public PersistedState Persisted()
    {
        _unsynced = null; // called on restart: whatever was not fsynced did not survive the crash
        CrashBeforeNextSave = CrashAfterNextSave = false;
        Recover();
        return new()
        {
            HardState = HardState,
            Entries = Log.ToArray(),
            SnapshotIndex = SnapshotIndex,
            SnapshotTerm = Snapshot?.Term ?? 0,
            Applied = SnapshotIndex,
            SnapshotConfiguration = Snapshot?.Configuration,
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

    /// <summary>The entry at <paramref name="index"/> in the durable log, or null.</summary>
    public Entry? LogAt(long index) => index > LogStart && index <= LastLogIndex ? Log[(int)(index - LogStart - 1)] : null;

    /// <summary>Saves a snapshot of the state machine at the applied index and drops the durable
    /// log up to it (atomically, as a temp file + rename + segment deletion does).</summary>
    public SimSnapshot TakeSnapshot(long term)
    {
        long index = AppliedLog.Count;
        if (index > LastLogIndex) throw new InvalidOperationException($"node {Id}: applied {index} beyond its durable log {LastLogIndex}");
        var snapshot = new SimSnapshot(index, term, Driver!.State.CaptureImage(), Driver.Node.ConfigurationAt(index), DurableClusterId);
        int drop = (int)Math.Min(index - LogStart, Log.Count);
        Log.RemoveRange(0, drop);
        LogStart = index;
        Snapshot = snapshot;
        return snapshot;
    }

    /// <summary>The state machine a snapshot holds; the applied log is padded up to its index.</summary>
    public KvStore LoadSnapshot(SimSnapshot snapshot)
    {
        while (AppliedLog.Count < snapshot.Index) AppliedLog.Add(null);
        return KvStore.FromImage(snapshot.Image);
    }

    /// <summary>A new machine under the same id: nothing on disk.</summary>
    public void WipeDisk()
    {
        HardState = HardState.Empty;
        _unsynced = null;
        Log.Clear();
        LogStart = 0;
        Snapshot = null;
    }

    public void LoseVolatileState()
    {
        Driver = null;
        AppliedLog.Clear();
        PausedUntil = 0;
        LastRole = Role.Follower;
    }
}
