using RaftServer.Cluster;

namespace RaftServer.Storage;

/// <summary>
/// <c>&lt;snapshot&gt;.cluster-id</c> beside a snapshot received by a node that knew no cluster id
/// yet: the id the sending leader named in the transfer's header (the .snap file itself holds none).
/// It is durable before the snapshot is renamed into place, so a node that crashes after receiving
/// the snapshot and before adopting the id, and then recovers from that snapshot, still learns the id
/// the snapshot's state belongs to (docs/security.md). It goes wherever its snapshot goes.
/// </summary>
internal static class SnapshotClusterIdFile
{
    public const string Suffix = ".cluster-id";

    public static string PathFor(string snapshotPath) => snapshotPath + Suffix;

    /// <summary>Writes <paramref name="id"/> to <paramref name="tempPath"/> and fsyncs it (renaming it into place is the caller's).</summary>
    /// <exception cref="IOException">writing or syncing failed.</exception>
    public static void WriteTemp(IDisk disk, string tempPath, ulong id)
    {
        using var file = disk.Open(tempPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, bufferSize: 64);
        file.Write(System.Text.Encoding.ASCII.GetBytes(ClusterIdentity.Format(id) + "\n"));
        file.Flush(flushToDisk: true);
    }

    /// <summary>The id beside <paramref name="snapshotPath"/>, or <see cref="ClusterIdentity.Unknown"/> when there is none.</summary>
    /// <exception cref="InvalidDataException">the file exists and does not hold an id.</exception>
    public static ulong Read(string snapshotPath)
    {
        var path = PathFor(snapshotPath);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (FileNotFoundException)
        {
            return ClusterIdentity.Unknown;
        }
        if (!ClusterIdentity.TryParse(text, out var id))
            throw new InvalidDataException($"{path}: expected a cluster id (16 hex digits), found '{text.Trim()}'");
        return id;
    }
}
