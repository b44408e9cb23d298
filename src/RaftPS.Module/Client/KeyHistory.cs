using System.Collections.Concurrent;

namespace RaftPS.Client;

/// <summary>Keys this session has used, for tab completion of -Key.</summary>
internal static class KeyHistory
{
    private const int Capacity = 10_000;
    private static readonly ConcurrentDictionary<string, byte> Keys = new(StringComparer.Ordinal);

    public static void Add(string key)
    {
        if (Keys.Count < Capacity) Keys.TryAdd(key, 0);
    }

    public static void Remove(string key) => Keys.TryRemove(key, out _);

    public static IEnumerable<string> StartingWith(string prefix) =>
        Keys.Keys.Where(k => k.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)).OrderBy(k => k, StringComparer.Ordinal);
}
