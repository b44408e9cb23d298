using RaftServer.Consensus;

namespace RaftServer.Storage;

/// <summary>
/// A snapshot file being received from the leader, byte for byte, into a temporary file. The
/// checksum is computed as the chunks arrive (the last 8 bytes seen are held back: they are the
/// trailer if no more come), so <see cref="Complete"/> does not read the file again. Used by one
/// thread at a time; dispose it in every case: an upload not completed deletes its file.
/// </summary>
public sealed class SnapshotUpload : IDisposable
{
    private readonly SnapshotStore _store;
    private readonly SnapshotMetadata _meta;
    private readonly string _tempPath;
    private readonly ulong _clusterId;
    private readonly FileStream _file;
    private readonly WriteBehind _writeBehind;
    private readonly SnapshotChecksum _hash = new();
    private readonly byte[] _heldBack = new byte[SnapshotFormat.TrailerLength];
    private int _heldBackCount;
    private bool _finished;

    /// <summary>Completed as the snapshot file this node already had for the same index and term
    /// (the upload was discarded): the file is not the upload's to delete.</summary>
    public bool KeptExisting { get; private set; }

    /// <summary>Bytes received so far.</summary>
    public long Length { get; private set; }

    internal SnapshotUpload(SnapshotStore store, SnapshotMetadata meta, string tempPath, ulong clusterId)
    {
        _store = store;
        _meta = meta;
        _tempPath = tempPath;
        _clusterId = clusterId;
        _file = store.Disk.Open(tempPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, bufferSize: 1 << 16);
        _writeBehind = new WriteBehind(_file, store.Disk);
    }

    /// <summary>Appends the next chunk of the file (memory stays bounded: it goes to disk).</summary>
    public void Write(ReadOnlySpan<byte> chunk)
    {
        ObjectDisposedException.ThrowIf(_finished, this);
        _file.Write(chunk);
        _writeBehind.Wrote();
        HashAllButLast8(chunk);
        Length += chunk.Length;
    }

    private void HashAllButLast8(ReadOnlySpan<byte> chunk)
    {
        if (chunk.Length >= _heldBack.Length)
        {
            _hash.Append(_heldBack.AsSpan(0, _heldBackCount));
            _hash.Append(chunk[..^_heldBack.Length]);
            chunk[^_heldBack.Length..].CopyTo(_heldBack);
            _heldBackCount = _heldBack.Length;
            return;
        }
        var overflow = _heldBackCount + chunk.Length - _heldBack.Length;
        if (overflow > 0)
        {
            _hash.Append(_heldBack.AsSpan(0, overflow));
            _heldBack.AsSpan(overflow, _heldBackCount - overflow).CopyTo(_heldBack);
            _heldBackCount -= overflow;
        }
        chunk.CopyTo(_heldBack.AsSpan(_heldBackCount));
        _heldBackCount += chunk.Length;
    }

    /// <summary>
    /// Checks the received file (magic, a header equal to the announced snapshot, length,
    /// checksum), fsyncs it, renames it into place and fsyncs the directory (after making the
    /// cluster id the sender named durable beside it, when there is one). Returns the
    /// durable file. An upload never replaces a snapshot file this node has: when one of the same
    /// index and term exists, the upload is discarded and that file returned (the state at a
    /// committed index and term is the same on every node, so a different upload for it is forged
    /// or broken).
    /// </summary>
    /// <exception cref="InvalidDataException">the file is not the announced snapshot or is damaged; the temporary file is deleted.</exception>
    public SnapshotFile Complete()
    {
        ObjectDisposedException.ThrowIf(_finished, this);
        try
        {
            if (Length < SnapshotFormat.MinimumFileLength)
                throw new InvalidDataException($"only {Length} bytes arrived, less than any snapshot file");
            _file.Flush();
            _file.Position = 0;
            var header = SnapshotFormat.ReadHeader(_file, new SnapshotChecksum()); // its bytes were hashed as they arrived
            if (!SnapshotFormat.SameMeta(header.Meta, _meta))
                throw new InvalidDataException($"the header says {SnapshotFormat.Describe(header.Meta)}, the leader announced {SnapshotFormat.Describe(_meta)}");
            if (Length != header.FileLength)
                throw new InvalidDataException($"{Length} bytes arrived but the header says the file is {header.FileLength}");
            SnapshotFormat.CheckTrailer(new MemoryStream(_heldBack, 0, _heldBackCount), _hash);
            _file.Flush(flushToDisk: true);
            _file.Dispose();
            var final = _store.FinalPath(_meta);
            var clusterIdMade = _clusterId != Cluster.ClusterIdentity.Unknown && KeepClusterIdBeside(final);
            if (!DurableFiles.InstallNew(_store.Disk, _tempPath, final))
            {
                // Not this upload's file: its cluster id does not describe it.
                if (clusterIdMade) DurableFiles.DeleteIfExists(SnapshotClusterIdFile.PathFor(final));
                Abort();
                KeptExisting = true;
                return new SnapshotFile(header.Meta, final, new FileInfo(final).Length);
            }
            _finished = true;
            _store.ReleaseTempFile(_tempPath);
            return new SnapshotFile(header.Meta, final, Length, _clusterId);
        }
        catch (InvalidDataException e)
        {
            Abort();
            throw new InvalidDataException($"snapshot upload ({SnapshotFormat.Describe(_meta)}): {e.Message}", e);
        }
        catch
        {
            Abort();
            throw;
        }
    }

    /// <summary>Makes the sender's cluster id durable beside where the snapshot will be, before the
    /// snapshot is: a node that recovers from this snapshot then knows the cluster it belongs to.
    /// False when a cluster-id file is there already (it stays: the first upload's).</summary>
    private bool KeepClusterIdBeside(string snapshotPath)
    {
        var temp = _store.ReserveTempFile(_meta, "cluster-id");
        try
        {
            SnapshotClusterIdFile.WriteTemp(_store.Disk, temp, _clusterId);
            return DurableFiles.InstallNew(_store.Disk, temp, SnapshotClusterIdFile.PathFor(snapshotPath));
        }
        finally
        {
            DurableFiles.DeleteIfExists(temp);
            _store.ReleaseTempFile(temp);
        }
    }

    /// <summary>Deletes the temporary file unless the upload completed.</summary>
    public void Dispose()
    {
        if (!_finished) Abort();
    }

    private void Abort()
    {
        _finished = true;
        try
        {
            _file.Dispose();
        }
        catch (IOException)
        {
            // Flushing the buffer of a file being abandoned failed (the disk is full): it is deleted below.
        }
        try
        {
            DurableFiles.DeleteIfExists(_tempPath);
        }
        finally
        {
            _store.ReleaseTempFile(_tempPath);
        }
    }
}
