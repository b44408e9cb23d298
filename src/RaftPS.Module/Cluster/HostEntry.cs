using System.Globalization;

namespace RaftPS.Cluster;

/// <summary>One -HostName entry of New-RaftClusterConfig: a host, with or without its own port.</summary>
internal sealed record HostEntry(string Host, int? Port)
{
    /// <summary>
    /// Reads <c>host</c> or <c>host:port</c>, where host is a name or an IPv4 address. Null when it
    /// is neither, or the host is not a valid name or address. IPv6 addresses are refused: the
    /// nodes' connections to each other (snapshots, forwarded calls) and the module's put the host
    /// into a URL without brackets.
    /// </summary>
    public static HostEntry? Parse(string text)
    {
        text = text.Trim();
        var parts = text.Split(':');
        if (parts.Length > 2) return null;
        var host = parts[0];
        if (host.Length == 0 || Uri.CheckHostName(host) is not (UriHostNameType.Dns or UriHostNameType.IPv4)) return null;
        if (parts.Length == 1) return new HostEntry(host, null);
        return int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is >= 1 and <= 65535
            ? new HostEntry(host, port)
            : null;
    }

    /// <summary>
    /// The nodes of a config for <paramref name="entries"/> in order (ids from 0): an entry without
    /// a port gets <paramref name="basePort"/> plus the number of earlier nodes on the same host, so
    /// three nodes on one machine get three ports and nodes on three machines the same one.
    /// </summary>
    public static List<ConfigNode> Assign(IReadOnlyList<HostEntry> entries, int basePort)
    {
        var nodes = new List<ConfigNode>();
        foreach (var entry in entries)
        {
            var port = entry.Port ?? basePort + nodes.Count(n => string.Equals(n.Host, entry.Host, StringComparison.OrdinalIgnoreCase));
            nodes.Add(new ConfigNode(nodes.Count, entry.Host, port));
        }
        return nodes;
    }
}
