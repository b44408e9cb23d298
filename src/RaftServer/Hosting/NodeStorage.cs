using Microsoft.Extensions.Logging;
using RaftServer.Consensus;
using RaftServer.StateMachine;
using RaftServer.Storage;

namespace RaftServer.Hosting;

/// <summary>What a node recovered from disk: the core's persisted state, the state machine loaded
/// from the newest valid snapshot (empty without one) and that snapshot's file.</summary>
public sealed record RecoveredNode(PersistedState State, KvStore Store, SnapshotFile? Snapshot);

/// <summary>
/// A node's durable state: the write-ahead log (<c>wal/</c>) and the snapshots (<c>snap/</c>) of
/// one data directory. <see cref="Recover"/> is the restart procedure shared by process start and
/// resume-after-suspend: load the newest snapshot that verifies (falling back to older ones, or to
/// none, in which case the leader will send one), then keep only the log that continues it.
/// </summary>
public sealed class NodeStorage : ILogStore, IDisposable
{
    private readonly DataDirectory _dir;
    private readonly ILogger _logger;
    private readonly IDisk _disk;

    public WriteAheadLog Wal { get; private set; }
    public SnapshotStore Snapshots { get; }

    private NodeStorage(DataDirectory dir, ILogger logger, WriteAheadLog wal, SnapshotStore snapshots, IDisk disk)
    {
        _dir = dir;
        _logger = logger;
        _disk = disk;
        Wal = wal;
        Snapshots = snapshots;
    }

    /// <exception cref="StorageCorruptException">the log is damaged before its tail.</exception>
    /// <exception cref="IOException">the files cannot be read or written.</exception>
    /// <param name="disk">The file layer (<see cref="Disk.Real"/> unless a test injects faults).</param>
    public static NodeStorage Open(DataDirectory dir, ILogger logger, out RecoveredNode recovered, IDisk? disk = null)
    {
        disk ??= Disk.Real;
        var snapshots = SnapshotStore.Open(dir.SnapPath, logger, disk);
        // The snapshot first: the log's replay needs to know what it covers (WriteAheadLog.Open's compactedThrough).
        var (snapshot, store) = LoadNewestSnapshot(snapshots, logger);
        var wal = WriteAheadLog.Open(dir.WalPath, logger, out var logged, disk: disk, compactedThrough: snapshot?.Meta.Index ?? 0);
        var storage = new NodeStorage(dir, logger, wal, snapshots, disk);
        try
        {
            recovered = storage.Recover(logged, snapshot, store);
        }
        catch
        {
            wal.Dispose();
            throw;
        }
        return storage;
    }

    /// <summary>Closes and reopens everything, as a process restart would (used after Suspend).</summary>
    public RecoveredNode Reopen()
    {
        Wal.Dispose();
        var (snapshot, store) = LoadNewestSnapshot(Snapshots, _logger);
        Wal = WriteAheadLog.Open(_dir.WalPath, _logger, out var logged, disk: _disk, compactedThrough: snapshot?.Meta.Index ?? 0);
        return Recover(logged, snapshot, store);
    }

    private RecoveredNode Recover(PersistedState logged, SnapshotFile? snapshot, KvStore store)
    {
        var state = RecoveryPlan.Apply(Wal, logged, snapshot?.Meta, _logger);
        // An empty log on disk that does not end at the snapshot (a crash right after installing a
        // leader's snapshot): start it there, so the next entries (snapshot index + 1) continue it.
        if (state.Entries.Count == 0 && Wal.LastIndex != state.SnapshotIndex) Wal.Reset(state.SnapshotIndex);
        if (snapshot is not null)
            _logger.LogInformation("Loaded the snapshot at index {Index} (term {Term}, {Keys} keys); replaying {Entries} log entries after it",
                snapshot.Meta.Index, snapshot.Meta.Term, store.Count, state.Entries.Count);
        return new RecoveredNode(state, store, snapshot);
    }

    /// <summary>The newest snapshot whose file verifies and loads; a damaged one is set aside and
    /// the next older tried (the checksum is checked again while loading).</summary>
    private static (SnapshotFile? File, KvStore Store) LoadNewestSnapshot(SnapshotStore snapshots, ILogger logger)
    {
        while (snapshots.NewestValid() is { } file)
        {
            try
            {
                return (file, snapshots.Load(file));
            }
            catch (InvalidDataException e)
            {
                logger.LogWarning("Snapshot {Path} cannot be loaded ({Reason}); setting it aside and trying an older one", file.Path, e.Message);
                File.Move(file.Path, file.Path + ".corrupt", overwrite: true);
            }
        }
        return (null, new KvStore());
    }

    // ILogStore: the driver persists to the current log (Reopen replaces it).
    public HardState HardState => Wal.HardState;
    public long SizeBytes => Wal.SizeBytes;
    public void Save(HardState? hardState, IReadOnlyList<Entry> entries, bool sync) => Wal.Save(hardState, entries, sync);
    public void Reset(long snapshotIndex) => Wal.Reset(snapshotIndex);

    public void Dispose() => Wal.Dispose();
}
