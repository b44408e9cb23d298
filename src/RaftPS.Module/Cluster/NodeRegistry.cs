using System.Collections.Concurrent;

namespace RaftPS.Cluster;

/// <summary>
/// The server processes this PowerShell process started, by config file and node id. They are
/// stopped by Stop-RaftCluster, and when the process exits.
/// </summary>
internal static class NodeRegistry
{
    private static readonly ConcurrentDictionary<(string Config, int Id), LaunchedNode> Nodes = new();
    private static int _exitHooked;

    private static StringComparer PathComparer =>
        OperatingSystem.IsWindows() ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal;

    public static LaunchedNode? Find(string configPath, int id) =>
        Nodes.TryGetValue((Normalize(configPath), id), out var node) ? node : null;

    public static void Add(LaunchedNode node)
    {
        Nodes[(Normalize(node.Info.ConfigPath), node.Info.Id)] = node;
        if (Interlocked.Exchange(ref _exitHooked, 1) == 0)
            AppDomain.CurrentDomain.ProcessExit += (_, _) => StopAll();
    }

    public static void Remove(LaunchedNode node) =>
        Nodes.TryRemove(new KeyValuePair<(string, int), LaunchedNode>((Normalize(node.Info.ConfigPath), node.Info.Id), node));

    public static IReadOnlyList<LaunchedNode> ForConfig(string configPath)
    {
        var key = Normalize(configPath);
        return Nodes.Where(p => PathComparer.Equals(p.Key.Config, key)).Select(p => p.Value).OrderBy(n => n.Info.Id).ToList();
    }

    /// <summary>The config files of the clusters this session runs nodes of.</summary>
    public static IReadOnlyList<string> Configs() =>
        Nodes.Values.Select(n => n.Info.ConfigPath).Distinct(PathComparer).Order(PathComparer).ToList();

    private static void StopAll()
    {
        foreach (var node in Nodes.Values)
        {
            try { if (node.IsStillOurs) node.Process.Kill(entireProcessTree: true); }
            catch (Exception) { /* exiting anyway */ }
        }
    }

    private static string Normalize(string path) => Path.GetFullPath(path);
}
