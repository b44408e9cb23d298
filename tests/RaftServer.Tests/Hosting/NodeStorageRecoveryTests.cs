using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.StateMachine;
using RaftServer.Storage;
using RaftServer.Tests.Storage;

namespace RaftServer.Tests.Hosting;

/// <summary>
/// A node restarts from its newest snapshot and the log after it; the log's replay is told what that
/// snapshot covers, so old segments a crash left behind a compaction do not stop the node.
/// </summary>
public sealed class NodeStorageRecoveryTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "raftps-tests", "nsrec-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly ListLogger _logger = new();

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private static Entry Set(long index, string key) =>
        new(index, 1, EntryKind.Command, Command.Encode(CommandOp.Set, 0, 1, (ulong)index, key, new byte[10]));

    /// <summary>A data directory whose log has 1..5, 6..10 and 11..15 in three segments and a snapshot at
    /// <paramref name="snapshotIndex"/>; then the middle segment is gone, as a crash during compaction leaves it.</summary>
    private DataDirectory LayOut(long snapshotIndex)
    {
        var data = DataDirectory.Open(_dir);
        var kv = new KvStore();
        for (var i = 1; i <= snapshotIndex; i++) kv.Apply(Set(i, "k" + i));
        var image = kv.CaptureImage();
        SnapshotStore.Open(data.SnapPath, _logger).Save(new SnapshotMetadata(snapshotIndex, 1, [1]), s => KvSnapshotCodec.Write(image, s));
        using (var wal = WriteAheadLog.Open(data.WalPath, _logger, out _))
        {
            wal.Save(new HardState(1, 1, 15), Enumerable.Range(1, 5).Select(i => Set(i, "k" + i)).ToArray());
            wal.Cut();
            wal.Save(null, Enumerable.Range(6, 5).Select(i => Set(i, "k" + i)).ToArray());
            wal.Cut();
            wal.Save(null, Enumerable.Range(11, 5).Select(i => Set(i, "k" + i)).ToArray());
        }
        File.Delete(Directory.GetFiles(data.WalPath, "*.wal").Order().ElementAt(1));
        return data;
    }

    [Fact]
    public void A_node_starts_from_its_snapshot_when_a_crash_cut_its_compaction_short()
    {
        using var data = LayOut(snapshotIndex: 10);
        using var storage = NodeStorage.Open(data, _logger, out var recovered);
        Assert.Equal(10, recovered.State.SnapshotIndex);
        Assert.Equal(Enumerable.Range(11, 5).Select(i => (long)i), recovered.State.Entries.Select(e => e.Index));
        Assert.Equal(10, recovered.Store.Count);
        Assert.Equal(11, storage.Wal.FirstIndex);
        Assert.Contains(_logger.Warnings, w => w.Contains("all of them in the snapshot at 10"));

        // Suspend and resume reopen the same way.
        var again = storage.Reopen();
        Assert.Equal(Enumerable.Range(11, 5).Select(i => (long)i), again.State.Entries.Select(e => e.Index));
    }

    [Fact]
    public void A_node_whose_snapshot_does_not_cover_the_gap_refuses_to_start()
    {
        using var data = LayOut(snapshotIndex: 8);
        var e = Assert.Throws<StorageCorruptException>(() => NodeStorage.Open(data, _logger, out _));
        Assert.Contains("the missing entries are not all in the snapshot, which ends at 8", e.Message);
    }
}
