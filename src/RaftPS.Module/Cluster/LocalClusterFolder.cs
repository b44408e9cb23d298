using System.Net;
using System.Net.Sockets;

namespace RaftPS.Cluster;

/// <summary>The local cluster asked for has a different number of nodes than the one on disk.</summary>
internal sealed class LocalClusterMismatchException(string message) : InvalidOperationException(message);

/// <summary>
/// The local clusters of Start-RaftCluster -Count: one folder per name in the user's folder
/// (<see cref="UserFolders.LocalCluster"/>), holding config.conf and each node's data. The first
/// start writes the config on free loopback ports; later starts reuse it, so the data and the
/// ports stay the cluster's own.
/// </summary>
internal static class LocalClusterFolder
{
    /// <summary>
    /// The first port tried: below the ranges operating systems hand out for outgoing connections
    /// (Linux from 32768, Windows and macOS from 49152), so a port chosen today is not taken by
    /// some client's connection tomorrow.
    /// </summary>
    public const int FirstPort = 17400;
    public const int LastPort = 32000;

    public static string ConfigPath(string folder) => Path.Combine(folder, "config.conf");

    /// <summary>Whether the cluster <paramref name="folder"/> already has its config.</summary>
    public static bool Exists(string folder) => File.Exists(ConfigPath(folder));

    /// <summary>Checks an existing cluster has <paramref name="count"/> nodes.</summary>
    /// <exception cref="LocalClusterMismatchException">it has another number of nodes.</exception>
    public static void CheckCount(string folder, string name, int count)
    {
        var nodes = ClusterConfigFile.Read(ConfigPath(folder));
        if (nodes.Count != count)
            throw new LocalClusterMismatchException(
                $"The local cluster '{name}' ({folder}) has {nodes.Count} node(s), not {count}. Start it with -Count {nodes.Count}, " +
                $"start another one with -Name, or remove its folder to start afresh (its data goes with it): Remove-Item -Recurse '{folder}'");
    }

    /// <summary>The nodes of an existing cluster whose port something else listens on (another session running it, another program).</summary>
    public static List<ConfigNode> NodesOnBusyPorts(string folder, Func<ConfigNode, bool> runsHere) =>
        ClusterConfigFile.Read(ConfigPath(folder)).Where(n => !runsHere(n) && !IsFree(n.Port)).ToList();

    /// <summary>Writes the config of a new local cluster of <paramref name="count"/> nodes on free ports of 127.0.0.1.</summary>
    /// <exception cref="IOException">no free ports, or the config cannot be written.</exception>
    public static void Create(string folder, int count)
    {
        var ports = FreePorts(count, PortsOfOtherClusters(folder));
        Directory.CreateDirectory(folder);
        var nodes = ports.Select((port, id) => new ConfigNode(id, "127.0.0.1", port)).ToList();
        ClusterConfigFile.Write(ConfigPath(folder), nodes, "A local RaftPS cluster made by Start-RaftCluster -Count: data in the node-ID folders beside this file.");
    }

    /// <summary>The ports other local clusters use, stopped or not: a new cluster keeps off them.</summary>
    private static HashSet<int> PortsOfOtherClusters(string folder)
    {
        var ports = new HashSet<int>();
        var all = Path.GetDirectoryName(folder);
        if (all is null || !Directory.Exists(all)) return ports;
        foreach (var other in Directory.EnumerateDirectories(all))
        {
            try
            {
                if (Exists(other))
                    foreach (var node in ClusterConfigFile.Read(ConfigPath(other))) ports.Add(node.Port);
            }
            catch (IOException)
            {
                // An unreadable config: its ports are simply not avoided.
            }
        }
        return ports;
    }

    /// <summary><paramref name="count"/> consecutive ports from <see cref="FirstPort"/> that nothing listens on.</summary>
    internal static int[] FreePorts(int count, IReadOnlySet<int> avoid)
    {
        for (var first = FirstPort; first + count - 1 <= LastPort; first++)
        {
            var range = Enumerable.Range(first, count).ToArray();
            if (range.All(p => !avoid.Contains(p) && IsFree(p))) return range;
        }
        throw new IOException($"No {count} consecutive free ports between {FirstPort} and {LastPort} on 127.0.0.1.");
    }

    private static bool IsFree(int port)
    {
        try
        {
            var listener = new TcpListener(IPAddress.Loopback, port) { ExclusiveAddressUse = OperatingSystem.IsWindows() };
            listener.Start();
            listener.Stop();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
