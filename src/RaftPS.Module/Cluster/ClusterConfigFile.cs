using System.Globalization;

namespace RaftPS.Cluster;

/// <summary>A node line of config.conf: <c>ID HOST PORT</c>.</summary>
internal sealed record ConfigNode(int Id, string Host, int Port);

/// <summary>
/// Reads the node lines of config.conf for launching. Lenient on purpose: lines it cannot read as
/// <c>ID HOST PORT</c> are left to the server, which validates the whole file and explains the
/// problem in its log (Start-RaftCluster then quotes it).
/// </summary>
internal static class ClusterConfigFile
{
    public static IReadOnlyList<ConfigNode> Read(string path)
    {
        var nodes = new List<ConfigNode>();
        foreach (var raw in File.ReadLines(path))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var fields = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length >= 3
                && int.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var id)
                && int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var port)
                && port is >= 1 and <= 65535
                && nodes.All(n => n.Id != id))
                nodes.Add(new ConfigNode(id, BareHost(fields[1]), port));
        }
        return nodes;
    }

    /// <summary>An IPv6 address written as in a URL ("[::1]") without its brackets, as the server reads it.</summary>
    private static string BareHost(string host) =>
        host is ['[', .., ']'] && Uri.CheckHostName(host[1..^1]) == UriHostNameType.IPv6 ? host[1..^1] : host;

    /// <summary>
    /// Writes <paramref name="nodes"/> as config.conf lines (<c>ID HOST PORT</c>) after a comment,
    /// through a temporary file renamed into place: a reader never sees half a config.
    /// </summary>
    public static void Write(string path, IEnumerable<ConfigNode> nodes, string comment)
    {
        var lines = new List<string> { $"# {comment}", "# One node per line: ID HOST PORT." };
        lines.AddRange(nodes.Select(n => string.Create(CultureInfo.InvariantCulture, $"{n.Id} {n.Host} {n.Port}")));
        var temp = $"{path}.{Environment.ProcessId}.tmp";
        File.WriteAllLines(temp, lines);
        File.Move(temp, path, overwrite: true);
    }
}
