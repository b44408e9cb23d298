namespace RaftServer.Storage;

/// <summary>
/// The file operations the durable state goes through (the write-ahead log, the snapshot store,
/// the segment preparer): opening a file, and the two steps that make a rename or a new file
/// durable. Tests replace it to make a write, an fsync, a rename or a directory fsync fail
/// (ENOSPC, EIO) at a chosen step; the node uses <see cref="Disk.Real"/>.
/// <para>
/// Files are <see cref="FileStream"/>s, whose Write and Flush are virtual already: a test's file
/// overrides them, and the log's hot path (one write(2) and one fsync per Ready) costs the same
/// calls as with a plain FileStream, with no wrapper and no allocation per append.
/// </para>
/// Every failure is an <see cref="IOException"/> (or <see cref="UnauthorizedAccessException"/>):
/// the callers treat it as fatal for the node (docs/security.md, "Disk errors").
/// </summary>
public interface IDisk
{
    FileStream Open(string path, FileMode mode, FileAccess access, FileShare share, int bufferSize, FileOptions options = FileOptions.None);

    /// <summary>Renames <paramref name="source"/> to <paramref name="destination"/> and makes the rename durable (<see cref="DurableFiles.Rename"/>).</summary>
    void Rename(string source, string destination, bool overwrite);

    /// <summary>Makes the directory's entries durable (<see cref="DurableFiles.SyncDirectory"/>); throws when it cannot.</summary>
    void SyncDirectory(string dir);

    /// <summary>
    /// Asks the kernel to start writing <paramref name="count"/> bytes of <paramref name="file"/> from
    /// <paramref name="offset"/> back to the disk, and with <paramref name="waitForIt"/> waits until they are
    /// (<see cref="DurableFiles.StartWriteback"/>; <see cref="WriteBehind"/>). Not durability: an fsync still is.
    /// </summary>
    void StartWriteback(FileStream file, long offset, long count, bool waitForIt) => DurableFiles.StartWriteback(file, offset, count, waitForIt);
}

/// <summary>The operating system's files.</summary>
public sealed class Disk : IDisk
{
    public static readonly Disk Real = new();

    private Disk() { }

    public FileStream Open(string path, FileMode mode, FileAccess access, FileShare share, int bufferSize, FileOptions options = FileOptions.None) =>
        new(path, mode, access, share, bufferSize, options);

    public void Rename(string source, string destination, bool overwrite) => DurableFiles.Rename(source, destination, overwrite);

    public void SyncDirectory(string dir) => DurableFiles.SyncDirectory(dir);
}
