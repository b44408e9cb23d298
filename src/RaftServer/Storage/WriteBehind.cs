namespace RaftServer.Storage;

/// <summary>
/// Hands a large file's bytes to the disk while it is being written, a chunk at a time, instead of
/// all at the fsync that ends it. A snapshot is tens or hundreds of MiB; written into the page cache
/// and fsynced once, it reaches the disk as one burst, and every write-ahead-log fsync of the node
/// (and, on a shared disk, of its neighbours) waits behind that burst: a put's tail latency was the
/// snapshot's flush. Here, each time <see cref="ChunkBytes"/> more bytes have been written, the
/// kernel is asked to start writing them back (<see cref="IDisk.StartWriteback"/>) and the chunk
/// before is waited for, so at most about two chunks are in the disk's queue at once. RocksDB does
/// the same (<c>bytes_per_sync</c>). The closing fsync is still what makes the file durable; this
/// only moves when its bytes travel. For files written front to back (snapshots saved or received).
/// </summary>
internal sealed class WriteBehind(FileStream file, IDisk disk, long chunkBytes = WriteBehind.DefaultChunkBytes)
{
    /// <summary>Small beside a write-ahead-log fsync's worth of the disk's time, large beside a syscall's cost.</summary>
    public const long DefaultChunkBytes = 1 << 20;

    /// <summary>Bytes from the start whose writeback has been started.</summary>
    private long _started;
    /// <summary>Bytes from the start known to be written back (waited for).</summary>
    private long _done;

    public long ChunkBytes => chunkBytes;

    /// <summary>Call after writing: once a chunk more has been written, starts its writeback and waits for the chunk before.</summary>
    public void Wrote()
    {
        long end = file.Position;
        if (end - _started < chunkBytes) return;
        file.Flush(); // the file's own buffer into the page cache, so the kernel sees every byte of the chunk
        if (_started > _done) disk.StartWriteback(file, _done, _started - _done, waitForIt: true);
        _done = _started;
        disk.StartWriteback(file, _started, end - _started, waitForIt: false);
        _started = end;
    }
}
