using RaftServer.Cluster;

namespace RaftServer.Storage;

/// <summary>
/// <c>cluster-id</c> in the data directory: the cluster's id (<see cref="ClusterIdentity"/>) as 16
/// hex digits on one line. Written once, durably (temporary file, fsync, rename, directory fsync),
/// when the node learns the id; never changed afterwards. A data directory without it (a node whose
/// cluster has no id yet, or made before cluster ids) is valid: the node learns the id from its
/// cluster.
/// </summary>
public static class ClusterIdFile
{
    public const string FileName = "cluster-id";

    public static string PathIn(string dataDirectory) => Path.Combine(dataDirectory, FileName);

    /// <summary>The id in the file, or <see cref="ClusterIdentity.Unknown"/> when there is no file.</summary>
    /// <exception cref="InvalidDataException">the file exists and does not hold an id.</exception>
    public static ulong Read(string dataDirectory)
    {
        var path = PathIn(dataDirectory);
        if (!File.Exists(path)) return ClusterIdentity.Unknown;
        var text = File.ReadAllText(path);
        if (!ClusterIdentity.TryParse(text, out var id))
            throw new InvalidDataException($"{path}: expected a cluster id (16 hex digits), found '{text.Trim()}'");
        return id;
    }

    /// <exception cref="IOException">writing or syncing failed.</exception>
    public static void Write(string dataDirectory, ulong id)
    {
        var path = PathIn(dataDirectory);
        var temp = path + ".tmp";
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            file.Write(System.Text.Encoding.ASCII.GetBytes(ClusterIdentity.Format(id) + "\n"));
            file.Flush(flushToDisk: true);
        }
        DurableFiles.Install(temp, path);
    }
}
