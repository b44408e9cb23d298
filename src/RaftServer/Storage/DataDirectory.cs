namespace RaftServer.Storage;

/// <summary>
/// A node's data directory: <c>LOCK</c> (held while the node runs, so two processes never share
/// one directory), <c>wal/</c> (the write-ahead log segments) and <c>snap/</c> (snapshots of the
/// state machine, see <see cref="SnapshotStore"/>).
/// </summary>
public sealed class DataDirectory : IDisposable
{
    private readonly FileStream _lock;

    public string Path { get; }
    public string WalPath => System.IO.Path.Combine(Path, "wal");
    public string SnapPath => System.IO.Path.Combine(Path, "snap");

    private DataDirectory(string path, FileStream lockFile)
    {
        Path = path;
        _lock = lockFile;
    }

    /// <exception cref="IOException">the directory cannot be created or another process holds it.</exception>
    public static DataDirectory Open(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        if (File.Exists(full)) throw new IOException($"data directory {full} is a file, not a directory");
        try
        {
            Directory.CreateDirectory(full);
        }
        catch (IOException e)
        {
            throw new IOException($"data directory {full} cannot be created: {e.Message}", e);
        }
        FileStream lockFile;
        try
        {
            lockFile = new FileStream(System.IO.Path.Combine(full, "LOCK"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new IOException($"data directory {full} is in use by another process ({e.Message})", e);
        }
        return new DataDirectory(full, lockFile);
    }

    public void Dispose() => _lock.Dispose();
}
