using System.Text;
using RaftServer.Consensus;
using RaftServer.StateMachine;
using RaftServer.Storage;

namespace RaftServer.Tests.Storage;

/// <summary>
/// ENOSPC, EIO and failed fsyncs at each durable step of the log and the snapshot store, through
/// <see cref="FaultyDisk"/>: the step throws, the log takes no write after a failure (even once the
/// disk is healthy again: fsyncgate), and reopening on a healthy disk finds everything that was
/// saved before the failure.
/// </summary>
public sealed class DiskFaultTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "raftps-tests", "diskfault-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly ListLogger _logger = new();
    private readonly FaultyDisk _disk = new();

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private static Entry E(long index, long term = 1) => new(index, term, EntryKind.Command, Encoding.UTF8.GetBytes($"value {index}"));

    private WriteAheadLog Open(out PersistedState state, long segmentBytes = WriteAheadLog.DefaultSegmentBytes, IDisk? disk = null) =>
        WriteAheadLog.Open(_dir, _logger, out state, segmentBytes, disk ?? _disk);

    /// <summary>Reopens the log on the real disk and returns the indexes it recovered.</summary>
    private long[] Recovered()
    {
        using var wal = Open(out var state, disk: Disk.Real);
        return state.Entries.Select(e => e.Index).ToArray();
    }

    private static long[] Range(long from, long to) => Enumerable.Range((int)from, (int)(to - from + 1)).Select(i => (long)i).ToArray();

    private static bool IsWal(string path) => path.EndsWith(".wal", StringComparison.Ordinal);

    /// <summary>Steps taken by this thread: not the preparer's, which zero-fills the next segment on its own.</summary>
    private static Func<string, bool> OnThisThread()
    {
        var self = Environment.CurrentManagedThreadId;
        return _ => Environment.CurrentManagedThreadId == self;
    }

    [Theory]
    [InlineData(DiskStep.Fsync, FaultyDisk.EIO)]
    [InlineData(DiskStep.Fsync, FaultyDisk.ENOSPC)]
    [InlineData(DiskStep.Write, FaultyDisk.ENOSPC)]
    [InlineData(DiskStep.Write, FaultyDisk.EIO)]
    public void A_failed_append_fails_the_save_and_every_later_one_even_once_the_disk_is_healthy(DiskStep step, int errno)
    {
        using (var wal = Open(out _))
        {
            wal.Save(new HardState(1, 0, 0), [E(1), E(2), E(3)]);
            _disk.Fail(step, errno, OnThisThread());

            var e = Assert.Throws<DiskFailureException>(() => wal.Save(new HardState(1, 0, 3), [E(4)]));
            Assert.Contains(errno == FaultyDisk.ENOSPC ? "No space left on device" : "Input/output error", e.Message);
            Assert.Equal(1, _disk.Fired);

            // fsyncgate: after a failed fsync a retry can succeed without the lost pages. The log
            // never tries: once failed it refuses, and the node stops.
            _disk.Heal();
            var again = Assert.Throws<DiskFailureException>(() => wal.Save(null, [E(5)]));
            Assert.Contains("failed earlier", again.Message);
            Assert.Throws<DiskFailureException>(() => wal.Reset(10));
            Assert.Throws<DiskFailureException>(() => wal.DeleteSegmentsThrough(3));
        }

        // What the failed save held was never acknowledged; it may or may not be there (the bytes
        // may have reached the page cache). Everything before it is.
        var recovered = Recovered();
        Assert.Equal(Range(1, 3), recovered.Take(3));
        Assert.True(recovered.Length <= 4);
    }

    [Theory]
    [InlineData(DiskStep.Rename, FaultyDisk.EIO)]
    [InlineData(DiskStep.SyncDirectory, FaultyDisk.EIO)]
    [InlineData(DiskStep.Fsync, FaultyDisk.EIO)]
    [InlineData(DiskStep.Write, FaultyDisk.ENOSPC)]
    public void A_failure_while_starting_the_next_segment_fails_the_save_that_needs_it(DiskStep step, int errno)
    {
        const long segmentBytes = 8 << 10;
        long saved;
        using (var wal = Open(out _, segmentBytes))
        {
            wal.Save(new HardState(1, 0, 0), [E(1)]);
            saved = 1;
            // The fault is armed for the save that fills the segment: that save starts the next one
            // (opens the file made ahead, fsyncs the old segment, writes and fsyncs the header,
            // renames the file into place, fsyncs the directory) before it appends.
            var armed = false;
            DiskFailureException? failure = null;
            for (var i = 2; i < 1000 && failure is null; i++)
            {
                if (!armed && wal.SizeBytes + WalRecord.EntrySize(E(i)) > segmentBytes)
                {
                    _disk.Fail(step, errno, OnThisThread());
                    armed = true;
                }
                try
                {
                    wal.Save(null, [E(i)]);
                    saved = i;
                }
                catch (DiskFailureException e)
                {
                    failure = e;
                }
            }
            Assert.NotNull(failure);
            Assert.Equal(1, _disk.Fired);
            Assert.True(saved > 10, $"the failure came with the first segment change, not at once (saved {saved})");
            Assert.Throws<DiskFailureException>(() => wal.Save(null, [E(saved + 1)]));
        }
        var recovered = Recovered();
        Assert.Equal(Range(1, saved), recovered.Take((int)saved));
        Assert.True(recovered.Length <= saved + 1);
    }

    [Fact]
    public void A_next_segment_that_cannot_be_made_ahead_falls_back_to_a_growing_file_and_a_full_disk_then_fails_the_save()
    {
        const long segmentBytes = 8 << 10;
        using (var wal = Open(out _, segmentBytes))
        {
            wal.Save(new HardState(1, 0, 0), [E(1)]);
        }
        // The preparer's zero-fill hits a full disk: the log starts the segment as a plain file.
        _disk.Fail(DiskStep.Write, FaultyDisk.ENOSPC, p => p.EndsWith(WalSegmentPreparer.FileName, StringComparison.Ordinal), sticky: true);
        long last;
        using (var wal = Open(out var state, segmentBytes))
        {
            last = state.Entries[^1].Index;
            var segments = Directory.GetFiles(_dir, "*.wal").Length;
            while (Directory.GetFiles(_dir, "*.wal").Length == segments) wal.Save(null, [E(++last)]);
            Assert.Contains(_logger.Warnings, w => w.Contains("could not pre-allocate"));

            // Now the disk is full for the log too.
            _disk.Fail(DiskStep.Write, FaultyDisk.ENOSPC, IsWal, sticky: true);
            Assert.Throws<DiskFailureException>(() => wal.Save(null, [E(last + 1)]));
            _disk.Heal();
        }
        Assert.Equal(Range(1, last), Recovered());
    }

    [Fact]
    public void A_failed_directory_fsync_after_deleting_compacted_segments_fails_the_log()
    {
        using (var wal = Open(out _, 8 << 10))
        {
            wal.Save(new HardState(1, 0, 0), [E(1)]);
            for (var i = 2; i <= 5; i++)
            {
                wal.Save(null, [E(i)]);
                wal.Cut();
            }
            _disk.Fail(DiskStep.SyncDirectory, FaultyDisk.EIO);
            Assert.Throws<DiskFailureException>(() => wal.DeleteSegmentsThrough(3));
            Assert.Throws<DiskFailureException>(() => wal.Save(null, [E(6)]));
        }
        Assert.Equal(Range(4, 5), Recovered().Where(i => i >= 4));
    }

    [Fact]
    public void A_failed_directory_fsync_while_discarding_the_log_for_a_snapshot_fails_the_log()
    {
        using (var wal = Open(out _))
        {
            wal.Save(new HardState(1, 0, 0), [E(1), E(2)]);
            _disk.Fail(DiskStep.SyncDirectory, FaultyDisk.EIO);
            Assert.Throws<DiskFailureException>(() => wal.Reset(100));
            Assert.Throws<DiskFailureException>(() => wal.Save(null, [E(101)]));
        }
    }

    // ---- snapshots ----

    private SnapshotStore Snapshots() => SnapshotStore.Open(Path.Combine(_dir, "snap"), _logger, _disk);

    private static SnapshotFile Save(SnapshotStore store, long index)
    {
        var kv = new KvStore();
        for (var i = 1; i <= index; i++)
            kv.Apply(new Entry(i, 1, EntryKind.Command, Command.Encode(CommandOp.Set, 0, 1, (ulong)i, $"k{i}", new byte[100])));
        var image = kv.CaptureImage();
        return store.Save(new SnapshotMetadata(index, 1, [1, 2, 3]), s => KvSnapshotCodec.Write(image, s));
    }

    [Theory]
    [InlineData(DiskStep.Write, FaultyDisk.ENOSPC)]
    [InlineData(DiskStep.Fsync, FaultyDisk.EIO)]
    [InlineData(DiskStep.Rename, FaultyDisk.EIO)]
    [InlineData(DiskStep.SyncDirectory, FaultyDisk.EIO)]
    [InlineData(DiskStep.Open, FaultyDisk.ENOSPC)]
    public void A_failed_snapshot_save_throws_and_leaves_no_temporary_file(DiskStep step, int errno)
    {
        var store = Snapshots();
        var first = Save(store, 10);
        _disk.Fail(step, errno);
        var e = Assert.ThrowsAny<IOException>(() => Save(store, 20));
        Assert.Equal(1, _disk.Fired);
        Assert.Contains(errno == FaultyDisk.ENOSPC ? "No space left on device" : "Input/output error", e.Message);
        Assert.Empty(Directory.GetFiles(store.Directory, "*.tmp"));
        _disk.Heal();

        // The older snapshot is intact; the new one exists only if it was renamed in whole.
        var newest = SnapshotStore.Open(store.Directory, _logger).NewestValid();
        Assert.NotNull(newest);
        Assert.Equal(step == DiskStep.SyncDirectory ? 20 : first.Meta.Index, newest.Meta.Index);
    }

    [Theory]
    [InlineData(DiskStep.Write, FaultyDisk.ENOSPC)]
    [InlineData(DiskStep.Fsync, FaultyDisk.EIO)]
    [InlineData(DiskStep.Rename, FaultyDisk.EIO)]
    public void A_failed_snapshot_upload_throws_and_leaves_no_temporary_file(DiskStep step, int errno)
    {
        var source = SnapshotStore.Open(Path.Combine(_dir, "leader"), _logger);
        var file = Save(source, 50);
        var bytes = File.ReadAllBytes(file.Path);

        var store = Snapshots();
        _disk.Fail(step, errno);
        using (var upload = store.BeginUpload(file.Meta))
        {
            Assert.ThrowsAny<IOException>(() =>
            {
                for (var at = 0; at < bytes.Length; at += 4096)
                    upload.Write(bytes.AsSpan(at, Math.Min(4096, bytes.Length - at)));
                upload.Complete();
            });
        }
        Assert.Equal(1, _disk.Fired);
        Assert.Empty(Directory.GetFiles(store.Directory, "*.tmp"));
        Assert.Null(SnapshotStore.Open(store.Directory, _logger).NewestValid());
    }
}
