using RaftServer.Storage;

namespace RaftServer.Tests.Storage;

/// <summary><see cref="WriteBehind"/>: a large file goes to the disk a chunk at a time while it is written.</summary>
public sealed class WriteBehindTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "raftps-tests", "writebehind-" + Guid.NewGuid().ToString("N")[..8]);

    public WriteBehindTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    /// <summary>Records every writeback asked for, with the file's length in the kernel at that moment.</summary>
    private sealed class RecordingDisk : IDisk
    {
        public readonly List<(long Offset, long Count, bool Wait, long LengthInKernel)> Calls = [];

        public FileStream Open(string path, FileMode mode, FileAccess access, FileShare share, int bufferSize, FileOptions options = FileOptions.None) =>
            Disk.Real.Open(path, mode, access, share, bufferSize, options);

        public void Rename(string source, string destination, bool overwrite) => Disk.Real.Rename(source, destination, overwrite);

        public void SyncDirectory(string dir) => Disk.Real.SyncDirectory(dir);

        public void StartWriteback(FileStream file, long offset, long count, bool waitForIt)
        {
            Calls.Add((offset, count, waitForIt, new FileInfo(file.Name).Length));
            DurableFiles.StartWriteback(file, offset, count, waitForIt);
        }
    }

    [Fact]
    public void Each_chunk_is_handed_to_the_disk_once_written_and_waited_for_one_chunk_later()
    {
        const int chunk = 256 << 10;
        var disk = new RecordingDisk();
        var path = Path.Combine(_dir, "big");
        using (var file = disk.Open(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, bufferSize: 1 << 16))
        {
            var behind = new WriteBehind(file, disk, chunk);
            var body = new AppendOnlyStream(file, behind);
            var block = new byte[10_000]; // not a divisor of the chunk: a chunk ends inside a write
            for (var written = 0; written < 3.5 * chunk; written += block.Length) body.Write(block);
            file.Flush(flushToDisk: true);
        }

        // A range is started once a chunk (262,144 bytes) more than the last has been written (with 10,000-byte
        // writes: at 270,000, 540,000, 810,000), and then the range before it is waited for; each is asked for
        // only once the file's own buffer is in the kernel (its length there covers the range).
        Assert.Equal(
            [(0L, 270_000L, false, 270_000L),
             (0L, 270_000L, true, 540_000L), (270_000L, 270_000L, false, 540_000L),
             (270_000L, 270_000L, true, 810_000L), (540_000L, 270_000L, false, 810_000L)],
            disk.Calls);
    }

    [Fact]
    public void A_small_file_asks_for_no_writeback()
    {
        var disk = new RecordingDisk();
        using var file = disk.Open(Path.Combine(_dir, "small"), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, bufferSize: 1 << 16);
        var body = new AppendOnlyStream(file, new WriteBehind(file, disk));
        body.Write(new byte[(int)WriteBehind.DefaultChunkBytes - 1]);
        Assert.Empty(disk.Calls);
    }

    [Fact]
    public void The_kernel_takes_the_ranges_asked_for()
    {
        // The real call (sync_file_range on Linux, nothing elsewhere) on a real file: no error.
        using var file = new FileStream(Path.Combine(_dir, "real"), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16);
        file.Write(new byte[1 << 20]);
        file.Flush();
        DurableFiles.StartWriteback(file, 0, 1 << 19, waitForIt: false);
        DurableFiles.StartWriteback(file, 0, 1 << 20, waitForIt: true);
    }
}
