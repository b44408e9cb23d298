using RaftServer.Storage;

namespace RaftServer.Tests.Storage;

/// <summary>A durable step <see cref="FaultyDisk"/> can make fail.</summary>
public enum DiskStep
{
    /// <summary>A write(2) into a file (the bytes never reach it).</summary>
    Write,
    /// <summary>An fsync of a file (Flush(flushToDisk: true)).</summary>
    Fsync,
    /// <summary>The rename of a durable rename (the file keeps its old name).</summary>
    Rename,
    /// <summary>The fsync of a directory (alone, or the second half of a durable rename: the file is renamed, the rename may not be on disk).</summary>
    SyncDirectory,
    /// <summary>Creating or opening a file.</summary>
    Open,
    /// <summary>Starting or waiting for the writeback of a range of a file (sync_file_range, <see cref="WriteBehind"/>).</summary>
    Writeback,
}

/// <summary>
/// The real file system with faults injected at chosen steps: the next (or the n-th) write, fsync,
/// rename, directory fsync or open whose path matches fails with the errno given (ENOSPC, EIO),
/// as the kernel reports it to .NET (an <see cref="IOException"/> with the errno as HResult).
/// A fault fires once unless sticky. Thread-safe: the segment preparer writes on its own thread.
/// </summary>
internal sealed class FaultyDisk : IDisk
{
    public const int ENOSPC = 28;
    public const int EIO = 5;

    private sealed class Fault(DiskStep step, int errno, Func<string, bool> matches, int skip, bool sticky)
    {
        public DiskStep Step { get; } = step;
        public int Errno { get; } = errno;
        public Func<string, bool> Matches { get; } = matches;
        public int Skip = skip;
        public bool Sticky { get; } = sticky;
    }

    private readonly Lock _lock = new();
    private readonly List<Fault> _faults = [];
    private readonly Dictionary<DiskStep, int> _counts = [];

    /// <summary>How many faults fired.</summary>
    public int Fired { get; private set; }

    /// <summary>Makes the <paramref name="skip"/>+1-th <paramref name="step"/> on a matching path fail with <paramref name="errno"/>.</summary>
    public void Fail(DiskStep step, int errno, Func<string, bool>? path = null, int skip = 0, bool sticky = false)
    {
        lock (_lock) _faults.Add(new Fault(step, errno, path ?? (_ => true), skip, sticky));
    }

    /// <summary>Removes every fault not fired yet (the operator fixed the disk).</summary>
    public void Heal()
    {
        lock (_lock) _faults.Clear();
    }

    public int Count(DiskStep step)
    {
        lock (_lock) return _counts.GetValueOrDefault(step);
    }

    internal void Check(DiskStep step, string path)
    {
        lock (_lock)
        {
            _counts[step] = _counts.GetValueOrDefault(step) + 1;
            foreach (var f in _faults)
            {
                if (f.Step != step || !f.Matches(path)) continue;
                if (f.Skip > 0)
                {
                    f.Skip--;
                    return;
                }
                if (!f.Sticky) _faults.Remove(f);
                Fired++;
                throw Error(f.Errno, step, path);
            }
        }
    }

    public static IOException Error(int errno, DiskStep step, string path) =>
        new($"{step} {path}: {(errno == ENOSPC ? "No space left on device" : errno == EIO ? "Input/output error" : $"errno {errno}")}", errno);

    public FileStream Open(string path, FileMode mode, FileAccess access, FileShare share, int bufferSize, FileOptions options = FileOptions.None)
    {
        Check(DiskStep.Open, path);
        return new FaultyFileStream(this, path, mode, access, share, bufferSize, options);
    }

    public void Rename(string source, string destination, bool overwrite)
    {
        Check(DiskStep.Rename, destination);
        File.Move(source, destination, overwrite);
        SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(destination))!);
    }

    public void SyncDirectory(string dir)
    {
        Check(DiskStep.SyncDirectory, dir);
        DurableFiles.SyncDirectory(dir);
    }

    public void StartWriteback(FileStream file, long offset, long count, bool waitForIt)
    {
        Check(DiskStep.Writeback, file.Name);
        DurableFiles.StartWriteback(file, offset, count, waitForIt);
    }

    private sealed class FaultyFileStream(FaultyDisk disk, string path, FileMode mode, FileAccess access, FileShare share, int bufferSize, FileOptions options)
        : FileStream(path, mode, access, share, bufferSize, options)
    {
        public override void Write(byte[] buffer, int offset, int count)
        {
            disk.Check(DiskStep.Write, Name);
            base.Write(buffer, offset, count);
        }

        // FileStream's span Write of a derived class goes through Write(byte[]) anyway: make it so
        // explicitly, so each write is checked once.
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            var copy = buffer.ToArray();
            Write(copy, 0, copy.Length);
        }

        public override void WriteByte(byte value) => Write([value], 0, 1);

        public override void Flush(bool flushToDisk)
        {
            if (flushToDisk) disk.Check(DiskStep.Fsync, Name);
            base.Flush(flushToDisk);
        }
    }
}
