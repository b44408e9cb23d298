using Microsoft.Extensions.Logging.Abstractions;
using RaftServer.Cluster;
using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.StateMachine;
using RaftServer.Storage;
using RaftServer.Tests.Storage;
using RaftServer.Transport;

namespace RaftServer.Tests.Hosting;

/// <summary>A snapshot that cannot be written, or a leader's snapshot that cannot be received, stops the node.</summary>
public sealed class SnapshotDiskFailureTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "raftps-tests", "snapfail-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly FaultyDisk _disk = new();
    private readonly List<LoopEvent> _posted = [];
    private readonly DataDirectory _data;
    private readonly NodeStorage _storage;
    private readonly SnapshotCoordinator _snapshots;

    public SnapshotDiskFailureTests()
    {
        _data = DataDirectory.Open(_dir);
        _storage = NodeStorage.Open(_data, NullLogger.Instance, out _, _disk);
        var membership = new Membership(1, new MemberSet([new Member(new NodeAddress(1, "127.0.0.1", 5001))]));
        _snapshots = new SnapshotCoordinator(_storage, membership, new SnapshotPolicy(1, 1), e => { lock (_posted) _posted.Add(e); }, NullLoggerFactory.Instance);
    }

    public void Dispose()
    {
        _snapshots.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _storage.Dispose();
        _data.Dispose();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    [Fact]
    public void A_snapshot_save_that_failed_on_the_disk_is_fatal()
    {
        var e = Assert.Throws<DiskFailureException>(() => _snapshots.SaveFailed(new SnapshotSaveFailed(FaultyDisk.Error(FaultyDisk.ENOSPC, DiskStep.Write, "snap/x.tmp"))));
        Assert.Contains("No space left on device", e.Message);
    }

    [Fact]
    public void A_snapshot_save_that_failed_otherwise_is_logged_and_tried_again()
    {
        _snapshots.SaveFailed(new SnapshotSaveFailed(new InvalidOperationException("a bug")));
    }

    [Theory]
    [InlineData(DiskStep.Fsync)]
    [InlineData(DiskStep.Rename)]
    public void A_leaders_snapshot_that_cannot_be_made_durable_fails_the_transfer_and_stops_the_node(DiskStep step)
    {
        Assert.ThrowsAny<IOException>(() => Receive(step));
        lock (_posted)
        {
            var failed = Assert.IsType<DiskFailed>(Assert.Single(_posted));
            Assert.IsType<DiskFailureException>(failed.Error);
        }
    }

    [Theory]
    [InlineData(DiskStep.Open)]
    [InlineData(DiskStep.Write)]
    [InlineData(DiskStep.Writeback)]
    public void A_temporary_file_that_cannot_be_written_fails_the_transfer_only(DiskStep step)
    {
        // Nothing depends on a temporary file: a sender filling the disk with uploads must not stop the node.
        Assert.ThrowsAny<IOException>(() => Receive(step));
        lock (_posted) Assert.Empty(_posted);
        Assert.Empty(Directory.GetFiles(_storage.Snapshots.Directory, "*.tmp"));
    }

    private void Receive(DiskStep step)
    {
        var source = SnapshotStore.Open(Path.Combine(_dir, "leader"), NullLogger.Instance);
        var kv = new KvStore();
        // Larger than a write-behind chunk, so the upload asks for a writeback too.
        kv.Apply(new Entry(1, 1, EntryKind.Command, Command.Encode(CommandOp.Set, 0, 1, 1, "k", new byte[WriteBehind.DefaultChunkBytes + 4096])));
        var image = kv.CaptureImage();
        var file = source.Save(new SnapshotMetadata(1, 1, [1]), s => KvSnapshotCodec.Write(image, s));
        var bytes = File.ReadAllBytes(file.Path);

        // Only the snapshot directory's files: the WAL's segment preparer fsyncs on its own thread.
        _disk.Fail(step, FaultyDisk.ENOSPC, path => path.StartsWith(_storage.Snapshots.Directory, StringComparison.Ordinal));
        var sink = (ISnapshotSink)_snapshots;
        using var upload = sink.BeginUpload(file.Meta);
        upload.Write(bytes);
        upload.Complete();
    }
}
