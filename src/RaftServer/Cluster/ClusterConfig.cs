using System.Globalization;

namespace RaftServer.Cluster;

/// <summary>A config.conf problem, always naming the file and (when there is one) the line.</summary>
public sealed class ConfigException(string message) : Exception(message);

/// <summary>
/// config.conf: one node per line, <c>ID HOST PORT</c>; blank lines and lines starting with '#'
/// are ignored. It only bootstraps: the running node's members are a <see cref="Membership"/>.
/// </summary>
public sealed class ClusterConfig
{
    public IReadOnlyList<NodeAddress> Nodes { get; }

    private ClusterConfig(IReadOnlyList<NodeAddress> nodes) => Nodes = nodes;

    public NodeAddress this[int id] => Find(id) ?? throw new KeyNotFoundException($"node {id} is not in the config");

    public NodeAddress? Find(int id) => Nodes.FirstOrDefault(n => n.Id == id);

    public static ClusterConfig Load(string path)
    {
        if (!File.Exists(path))
            throw new ConfigException($"{path}: file not found");
        return Parse(File.ReadAllLines(path), path);
    }

    public static ClusterConfig Parse(IEnumerable<string> lines, string source = "config.conf")
    {
        var nodes = new List<NodeAddress>();
        var lineNumber = 0;
        foreach (var raw in lines)
        {
            lineNumber++;
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
                continue;

            string Where() => $"{source}:{lineNumber}";
            var fields = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length != 3)
                throw new ConfigException($"{Where()}: expected 'ID HOST PORT', found {fields.Length} field(s): '{line}'");
            if (!int.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var id))
                throw new ConfigException($"{Where()}: node id '{fields[0]}' is not a non-negative integer");
            var host = NodeAddress.BareHost(fields[1]); // an IPv6 address bare ("::1") or as in a URL ("[::1]")
            if (Uri.CheckHostName(host) == UriHostNameType.Unknown)
                throw new ConfigException($"{Where()}: '{host}' is not a valid host name or address");
            if (!int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
                throw new ConfigException($"{Where()}: port '{fields[2]}' is not a number from 1 to 65535");
            if (nodes.Any(n => n.Id == id))
                throw new ConfigException($"{Where()}: duplicate node id {id}");
            if (nodes.FirstOrDefault(n => n.Port == port && string.Equals(n.Host, host, StringComparison.OrdinalIgnoreCase)) is { } clash)
                throw new ConfigException($"{Where()}: {NodeAddress.Format(host, port)} is already used by node {clash.Id}");
            nodes.Add(new NodeAddress(id, host, port));
        }

        if (nodes.Count == 0)
            throw new ConfigException($"{source}: no nodes listed (expected lines of 'ID HOST PORT')");
        return new ClusterConfig(nodes);
    }
}
