using RaftServer.Storage;

namespace RaftServer.Api;

/// <summary>
/// The real disk, except that every fsync of a file after the first <c>failAfter</c> fails with
/// EIO, as a dying disk's do: <see cref="UnsafeTestSwitches.FailFsyncAfter"/>, for the
/// real-process test that a failed fsync stops the node and loses nothing acknowledged.
/// </summary>
internal sealed class FsyncFailingDisk(long failAfter) : IDisk
{
    private const int EIO = 5;
    private long _fsyncs;

    public FileStream Open(string path, FileMode mode, FileAccess access, FileShare share, int bufferSize, FileOptions options = FileOptions.None) =>
        new FailingFileStream(this, path, mode, access, share, bufferSize, options);

    public void Rename(string source, string destination, bool overwrite) => Disk.Real.Rename(source, destination, overwrite);

    public void SyncDirectory(string dir) => Disk.Real.SyncDirectory(dir);

    private void Count(string path)
    {
        if (Interlocked.Increment(ref _fsyncs) > failAfter)
            throw new IOException($"fsync of {path} failed: Input/output error (injected: {UnsafeTestSwitches.FailFsyncAfterVariable}={failAfter})", EIO);
    }

    private sealed class FailingFileStream(FsyncFailingDisk disk, string path, FileMode mode, FileAccess access, FileShare share, int bufferSize, FileOptions options)
        : FileStream(path, mode, access, share, bufferSize, options)
    {
        public override void Flush(bool flushToDisk)
        {
            if (flushToDisk) disk.Count(Name);
            base.Flush(flushToDisk);
        }
    }
}
