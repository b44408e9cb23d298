using System.Collections.Concurrent;

namespace RaftPS.Client;

/// <summary>Lock names this session has used, for tab completion of Lock-RaftKey -Name.</summary>
internal static class LockNames
{
    private const int Capacity = 1_000;
    private static readonly ConcurrentDictionary<string, byte> Names = new(StringComparer.Ordinal);

    public static void Add(string name)
    {
        if (Names.Count < Capacity) Names.TryAdd(name, 0);
    }

    public static IEnumerable<string> StartingWith(string prefix) =>
        Names.Keys.Where(k => k.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)).OrderBy(k => k, StringComparer.Ordinal);
}
