using System.Collections.Concurrent;

namespace RaftPS.Client;

/// <summary>
/// The members of each cluster this process knows of, by any member's endpoint: learned from
/// Status replies and from the configs Start-RaftCluster launched. Retries go through them.
/// </summary>
internal static class ClusterDirectory
{
    private static readonly ConcurrentDictionary<RaftEndpoint, RaftEndpoint[]> Members = new();

    public static void Record(IReadOnlyCollection<RaftEndpoint> members)
    {
        if (members.Count == 0) return;
        var array = members.Distinct().ToArray();
        foreach (var member in array) Members[member] = array;
    }

    public static bool Knows(RaftEndpoint endpoint) => Members.ContainsKey(endpoint);

    /// <summary>The endpoint itself first, then the other known members of its cluster.</summary>
    public static RaftEndpoint[] Candidates(RaftEndpoint endpoint) =>
        Members.TryGetValue(endpoint, out var members)
            ? [endpoint, .. members.Where(m => !m.Equals(endpoint))]
            : [endpoint];
}
