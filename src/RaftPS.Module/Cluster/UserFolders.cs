namespace RaftPS.Cluster;

/// <summary>
/// Where the module keeps what belongs to the user rather than to a project folder: the local
/// clusters of Start-RaftCluster -Count and copies of the server made runnable. %LOCALAPPDATA%\RaftPS
/// on Windows, ~/Library/Application Support/RaftPS on macOS, $XDG_DATA_HOME/RaftPS (by default
/// ~/.local/share/RaftPS) on Linux.
/// </summary>
internal static class UserFolders
{
    public static string Root
    {
        get
        {
            var data = Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.DoNotVerify);
            // No home folder at all (a bare service account): the temporary folder still works.
            if (string.IsNullOrEmpty(data)) data = Path.GetTempPath();
            return Path.Combine(data, "RaftPS");
        }
    }

    /// <summary>The folder of the local cluster <paramref name="name"/>: its config.conf and node-ID folders.</summary>
    public static string LocalCluster(string name) => Path.Combine(Root, "clusters", name);

    /// <summary>The folder that holds every local cluster.</summary>
    public static string LocalClusters => Path.Combine(Root, "clusters");
}
