using System.Collections.Concurrent;

namespace RaftPS.Client;

/// <summary>The members this process has seen in Get-RaftMember and Get-RaftStatus replies, for tab completion of ids.</summary>
internal static class KnownMembers
{
    private static readonly ConcurrentDictionary<int, RaftMember> Members = new();

    public static void Record(IEnumerable<RaftMember> members)
    {
        foreach (var m in members) Members[m.Id] = m;
    }

    public static IReadOnlyList<RaftMember> All => Members.Values.OrderBy(m => m.Id).ToList();
}
