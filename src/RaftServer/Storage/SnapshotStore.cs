using System.Buffers;
using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using RaftServer.Consensus;
using RaftServer.StateMachine;

namespace RaftServer.Storage;

/// <summary>A complete, verified snapshot file (see <see cref="SnapshotFormat"/>).</summary>
/// <param name="ClusterId">For a snapshot received while this node knew no cluster id: the id its
/// sender named, kept beside the file (<see cref="SnapshotClusterIdFile"/>); otherwise
/// <see cref="Cluster.ClusterIdentity.Unknown"/>.</param>
public sealed record SnapshotFile(SnapshotMetadata Meta, string Path, long Length, ulong ClusterId = Cluster.ClusterIdentity.Unknown);

/// <summary>
/// The snapshot files of one node (<c>snap/</c> in the data directory). A file only ever appears
/// complete: it is written (or received) under a temporary name, fsynced, renamed into place and
/// the directory fsynced, so a crash leaves at worst a <c>*.tmp</c> file, which is removed.
/// <para>
/// Thread-safety: every member may be called from any thread. <see cref="Save"/> is meant for a
/// background thread and uploads run on gRPC threads while the node loop calls the rest; the only
/// shared state is the set of temporary files in use (so <see cref="Prune"/> never deletes one),
/// kept under a lock that is never held across file I/O. Files are opened with
/// <see cref="FileShare.Delete"/>, so pruning a file that is being streamed to a follower does
/// not break that transfer (on Linux the reader keeps the data until it closes the file).
/// </para>
/// </summary>
public sealed class SnapshotStore
{
    private const string TempExtension = ".tmp";
    private const string CorruptExtension = ".corrupt";
    /// <summary>An old snapshot taken out of the store, its space not freed yet (<see cref="PruneInBackground"/>).</summary>
    private const string DiscardedExtension = ".discarded";

    private readonly ILogger _logger;
    private readonly object _lock = new();
    private readonly HashSet<string> _tempFilesInUse = new(StringComparer.Ordinal);

    public string Directory { get; }
    /// <summary>The file layer saves and uploads go through.</summary>
    internal IDisk Disk { get; }

    private SnapshotStore(string dir, ILogger logger, IDisk disk)
    {
        Directory = dir;
        _logger = logger;
        Disk = disk;
    }

    /// <summary>Opens (creating it if needed) the snapshot directory and removes temporary files a
    /// crash left behind, and cluster-id files whose snapshot is gone.</summary>
    /// <param name="disk">The file layer (<see cref="Storage.Disk.Real"/> unless a test injects faults).</param>
    public static SnapshotStore Open(string dir, ILogger logger, IDisk? disk = null)
    {
        var full = Path.GetFullPath(dir);
        System.IO.Directory.CreateDirectory(full);
        var store = new SnapshotStore(full, logger, disk ?? Storage.Disk.Real);
        foreach (var temp in System.IO.Directory.EnumerateFiles(full, "*" + TempExtension))
        {
            logger.LogWarning("{Path}: removing an incomplete snapshot left by a crash", temp);
            DurableFiles.DeleteIfExists(temp);
        }
        foreach (var discarded in System.IO.Directory.EnumerateFiles(full, "*" + DiscardedExtension))
            DurableFiles.DeleteIfExists(discarded);
        // Only here, with no upload running: an upload makes its cluster-id file before its snapshot.
        foreach (var clusterId in System.IO.Directory.EnumerateFiles(full, "*" + SnapshotFormat.Extension + SnapshotClusterIdFile.Suffix))
            if (!File.Exists(clusterId[..^SnapshotClusterIdFile.Suffix.Length]))
                DurableFiles.DeleteIfExists(clusterId);
        return store;
    }

    /// <summary>Bytes of all snapshot files (temporary and corrupt ones not counted).</summary>
    public long SizeBytes
    {
        get
        {
            long total = 0;
            foreach (var file in new DirectoryInfo(Directory).EnumerateFiles("*" + SnapshotFormat.Extension))
                total += file.Length;
            return total;
        }
    }

    /// <summary>
    /// The newest snapshot whose header and checksum verify (reads each candidate whole: meant for
    /// start-up). A damaged file is logged, renamed to <c>*.corrupt</c> (kept for inspection, never
    /// tried again) and the next older one is tried. Null when there is none.
    /// </summary>
    public SnapshotFile? NewestValid()
    {
        foreach (var (index, term, path) in List().OrderByDescending(s => (s.Index, s.Term)))
        {
            try
            {
                SnapshotHeader header;
                using (var file = OpenFile(path))
                    header = SnapshotFormat.Verify(file);
                if (header.Meta.Index != index || header.Meta.Term != term)
                    throw new InvalidDataException($"the header says index {header.Meta.Index} term {header.Meta.Term}, the file name {index}/{term}");
                return new SnapshotFile(header.Meta, path, header.FileLength, ClusterIdBeside(path));
            }
            catch (InvalidDataException e)
            {
                _logger.LogWarning("{Path}: damaged snapshot ({Reason}); renamed to {Corrupt}, trying an older one", path, e.Message, path + CorruptExtension);
                Disk.Rename(path, path + CorruptExtension, overwrite: true);
            }
            catch (FileNotFoundException)
            {
                // Pruned while we looked: not damage, just gone.
            }
        }
        return null;
    }

    /// <summary>The cluster id kept beside a snapshot; a damaged cluster-id file is logged and
    /// ignored (the snapshot itself is sound, and the node learns the id from its cluster).</summary>
    private ulong ClusterIdBeside(string snapshotPath)
    {
        try
        {
            return SnapshotClusterIdFile.Read(snapshotPath);
        }
        catch (InvalidDataException e)
        {
            _logger.LogWarning("{Message}; ignored", e.Message);
            return Cluster.ClusterIdentity.Unknown;
        }
    }

    /// <summary>
    /// Writes a snapshot: <paramref name="writeBody"/> streams the body (the state machine) into
    /// a temporary file after the header; then the checksum is appended, the file fsynced, renamed
    /// into place and the directory fsynced. Returns once the snapshot is durable. A file for the
    /// same snapshot is replaced.
    /// </summary>
    /// <exception cref="IOException">a write, the fsync, the rename or the directory fsync failed
    /// (the temporary file is deleted): the node treats it as fatal.</exception>
    public SnapshotFile Save(SnapshotMetadata meta, Action<Stream> writeBody)
    {
        SnapshotFormat.Validate(meta);
        ArgumentNullException.ThrowIfNull(writeBody);
        var temp = ReserveTempFile(meta, "save");
        try
        {
            long length;
            using (var file = Disk.Open(temp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, bufferSize: 1 << 16))
            {
                var header = SnapshotFormat.EncodeHeader(meta, bodyLength: 0);
                file.Write(header);
                var body = new AppendOnlyStream(file, new WriteBehind(file, Disk));
                writeBody(body);
                var bodyLength = body.Written;

                // The header (which holds the body length) comes first and the checksum covers it,
                // so the file can only be hashed once the body is written: patch the length in,
                // then read the file back (from the page cache) to hash it.
                BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(SnapshotFormat.BodyLengthOffset(header)), bodyLength);
                file.Position = 0;
                file.Write(header);
                file.Position = 0;
                var hash = new SnapshotChecksum();
                SnapshotFormat.HashBytes(file, header.Length + bodyLength, hash);
                Span<byte> trailer = stackalloc byte[SnapshotFormat.TrailerLength];
                BinaryPrimitives.WriteUInt64LittleEndian(trailer, hash.Current);
                file.Write(trailer);
                file.Flush(flushToDisk: true);
                length = file.Length;
            }
            var final = FinalPath(meta);
            Disk.Rename(temp, final, overwrite: true);
            return new SnapshotFile(meta, final, length);
        }
        catch
        {
            DurableFiles.DeleteIfExists(temp);
            throw;
        }
        finally
        {
            ReleaseTempFile(temp);
        }
    }

    /// <summary>Starts receiving the leader's file for <paramref name="meta"/> byte for byte (see <see cref="SnapshotUpload"/>).</summary>
    /// <param name="clusterId">The cluster id the sender named, to keep beside the file (<see cref="SnapshotClusterIdFile"/>);
    /// <see cref="Cluster.ClusterIdentity.Unknown"/> for none.</param>
    public SnapshotUpload BeginUpload(SnapshotMetadata meta, ulong clusterId = Cluster.ClusterIdentity.Unknown)
    {
        SnapshotFormat.Validate(meta);
        var temp = ReserveTempFile(meta, "upload");
        try
        {
            return new SnapshotUpload(this, meta, temp, clusterId);
        }
        catch
        {
            ReleaseTempFile(temp);
            throw;
        }
    }

    /// <summary>The file's raw bytes, header to trailer: what a leader streams to a follower. Survives a concurrent <see cref="Prune"/>.</summary>
    public Stream OpenRead(SnapshotFile file) => OpenFile(file.Path);

    /// <summary>Reads a snapshot into a new state machine, verifying the checksum in the same pass.</summary>
    /// <exception cref="InvalidDataException">the file is damaged or not the snapshot <paramref name="file"/> names; the message names the file and the problem.</exception>
    public KvStore Load(SnapshotFile file)
    {
        try
        {
            using var stream = OpenFile(file.Path);
            var hash = new SnapshotChecksum();
            var header = SnapshotFormat.ReadHeader(stream, hash);
            if (!SnapshotFormat.SameMeta(header.Meta, file.Meta))
                throw new InvalidDataException($"the header says {SnapshotFormat.Describe(header.Meta)}, expected {SnapshotFormat.Describe(file.Meta)}");
            if (stream.Length != header.FileLength)
                throw new InvalidDataException($"the file is {stream.Length} bytes but its header says {header.FileLength}");

            var body = new ChecksummedReadStream(stream, header.BodyLength, hash);
            KvStore store;
            try
            {
                store = KvSnapshotCodec.Read(body);
            }
            catch (InvalidDataException e)
            {
                // Say whether the disk damaged the file or it was written wrong.
                body.Drain();
                SnapshotFormat.CheckTrailer(stream, hash);
                throw new InvalidDataException($"the checksum matches but the body is unreadable: {e.Message}", e);
            }
            SnapshotFormat.CheckTrailer(stream, hash);
            if (store.AppliedIndex != header.Meta.Index)
                throw new InvalidDataException($"the state machine inside is at index {store.AppliedIndex}, the header says {header.Meta.Index}");
            return store;
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"snapshot {file.Path}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Deletes every snapshot older than <paramref name="keep"/> except the newest of them (so two
    /// remain: one to fall back to if the newest turns out damaged), and temporary files no save or
    /// upload is using. Newer snapshots are left alone.
    /// </summary>
    public void Prune(SnapshotFile keep)
    {
        foreach (var discarded in Discard(keep)) Free(discarded);
    }

    /// <summary>
    /// <see cref="Prune"/> for the node loop: the old snapshots leave the store at once (each is
    /// renamed, which is quick whatever its size), and their space is freed on the thread pool.
    /// Unlinking a file of tens or hundreds of MiB took the loop 20-40 ms here (the file system frees
    /// every extent), a stall of every write and read in flight at each snapshot. The task is
    /// returned for tests; a deletion that fails is logged (the file is removed at the next start).
    /// </summary>
    public Task PruneInBackground(SnapshotFile keep)
    {
        var discarded = Discard(keep);
        if (discarded.Count == 0) return Task.CompletedTask;
        return Task.Run(() =>
        {
            foreach (var path in discarded)
            {
                try
                {
                    Free(path);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    _logger.LogWarning("{Path}: an old snapshot could not be deleted ({Message}); it is removed at the next start", path, e.Message);
                }
            }
        });
    }

    /// <summary>Deletes a snapshot <see cref="Discard"/> took out of the store and releases its name.</summary>
    private void Free(string discarded)
    {
        try
        {
            DurableFiles.DeleteIfExists(discarded);
        }
        finally
        {
            lock (_lock) _tempFilesInUse.Remove(discarded);
        }
    }

    /// <summary>Takes the snapshots <see cref="Prune"/> deletes out of the store (renamed to <see
    /// cref="DiscardedExtension"/> names, marked in use) and deletes unused temporary files; returns the
    /// renamed files, whose space the caller frees.</summary>
    private List<string> Discard(SnapshotFile keep)
    {
        var older = List()
            .Where(s => (s.Index, s.Term).CompareTo((keep.Meta.Index, keep.Meta.Term)) < 0)
            .OrderBy(s => (s.Index, s.Term))
            .ToList();
        var discarded = new List<string>();
        // Not fsynced: a deletion (or rename) a crash undoes only brings back a file the next Prune deletes.
        for (var i = 0; i < older.Count - 1; i++)
        {
            var path = older[i].Path;
            _logger.LogInformation("{Path}: deleting an old snapshot", path);
            var renamed = $"{path}.{Guid.NewGuid():N}{DiscardedExtension}";
            lock (_lock) _tempFilesInUse.Add(renamed);
            try
            {
                File.Move(path, renamed);
                discarded.Add(renamed);
            }
            catch (FileNotFoundException)
            {
                lock (_lock) _tempFilesInUse.Remove(renamed);
            }
            // After the snapshot is gone (a crash between the two leaves a cluster-id file, which Open removes).
            DurableFiles.DeleteIfExists(SnapshotClusterIdFile.PathFor(path));
        }

        foreach (var temp in System.IO.Directory.EnumerateFiles(Directory, "*" + TempExtension).Concat(
                     System.IO.Directory.EnumerateFiles(Directory, "*" + DiscardedExtension)))
        {
            // A temp file is reserved before it is created and released after it is renamed or
            // deleted, so one not reserved now is a leftover (or already gone); so is a discarded
            // snapshot whose deletion failed.
            bool inUse;
            lock (_lock) inUse = _tempFilesInUse.Contains(temp);
            if (!inUse) DurableFiles.DeleteIfExists(temp);
        }
        return discarded;
    }

    /// <summary>Deletes a snapshot file and its cluster-id file (after it: a crash between the two
    /// leaves a cluster-id file without a snapshot, which <see cref="Open"/> removes).</summary>
    public void Delete(SnapshotFile file) => DeleteFile(file.Path);

    private static void DeleteFile(string path)
    {
        DurableFiles.DeleteIfExists(path);
        DurableFiles.DeleteIfExists(SnapshotClusterIdFile.PathFor(path));
    }

    private List<(long Index, long Term, string Path)> List()
    {
        var found = new List<(long, long, string)>();
        foreach (var path in System.IO.Directory.EnumerateFiles(Directory, "*" + SnapshotFormat.Extension))
            if (SnapshotFormat.TryParseFileName(path, out var index, out var term))
                found.Add((index, term, path));
        return found;
    }

    private static FileStream OpenFile(string path) =>
        new(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, bufferSize: 1 << 16, FileOptions.SequentialScan);

    /// <summary>A unique temporary file name for a snapshot, marked in use (so Prune leaves it) until released.</summary>
    internal string ReserveTempFile(SnapshotMetadata meta, string purpose)
    {
        var path = Path.Combine(Directory, $"{SnapshotFormat.FileName(meta)}.{Guid.NewGuid():N}.{purpose}{TempExtension}");
        lock (_lock) _tempFilesInUse.Add(path);
        return path;
    }

    internal void ReleaseTempFile(string path)
    {
        lock (_lock) _tempFilesInUse.Remove(path);
    }

    /// <summary>Where a complete snapshot file for <paramref name="meta"/> lives.</summary>
    internal string FinalPath(SnapshotMetadata meta) => Path.Combine(Directory, SnapshotFormat.FileName(meta));
}
