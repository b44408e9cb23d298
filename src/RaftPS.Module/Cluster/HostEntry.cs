using System.Globalization;

namespace RaftPS.Cluster;

/// <summary>One -HostName entry of New-RaftClusterConfig: a host, with or without its own port.</summary>
internal sealed record HostEntry(string Host, int? Port)
{
    /// <summary>
    /// Reads <c>host</c> or <c>host:port</c>, where host is a name or an IPv4 address, or an IPv6
    /// address bare (<c>::1</c>) or in brackets (<c>[::1]</c>, <c>[::1]:5000</c>). Null when it is
    /// none of these, or the host is not a valid name or address.
    /// </summary>
    public static HostEntry? Parse(string text)
    {
        text = text.Trim();
        string host;
        string? port = null;
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']');
            if (close < 0) return null;
            host = text[1..close];
            if (Uri.CheckHostName(host) != UriHostNameType.IPv6) return null;
            var rest = text[(close + 1)..];
            if (rest.Length > 0)
            {
                if (rest[0] != ':') return null;
                port = rest[1..];
            }
        }
        else if (text.Count(c => c == ':') > 1)
        {
            host = text;
            if (Uri.CheckHostName(host) != UriHostNameType.IPv6) return null;
        }
        else
        {
            var colon = text.IndexOf(':');
            host = colon < 0 ? text : text[..colon];
            if (colon >= 0) port = text[(colon + 1)..];
            if (host.Length == 0 || Uri.CheckHostName(host) is not (UriHostNameType.Dns or UriHostNameType.IPv4)) return null;
        }
        if (port is null) return new HostEntry(host, null);
        return int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var number) && number is >= 1 and <= 65535
            ? new HostEntry(host, number)
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
