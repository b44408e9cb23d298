using System.Collections.Concurrent;

namespace RaftPS.Client;

/// <summary>Keys this session has used, for tab completion of -Key.</summary>
internal static class KeyHistory
{
    private const int Capacity = 10_000;
    private static readonly ConcurrentDictionary<string, byte> Keys = new(StringComparer.Ordinal);
    // ConcurrentDictionary.Count takes every lock of the table: keep our own count for the
    // per-write check (approximate under races, which only moves the cap by a few keys).
    private static int _count;

    public static void Add(string key)
    {
        if (Volatile.Read(ref _count) < Capacity && Keys.TryAdd(key, 0)) Interlocked.Increment(ref _count);
    }

    public static void Remove(string key)
    {
        if (Keys.TryRemove(key, out _)) Interlocked.Decrement(ref _count);
    }

    public static IEnumerable<string> StartingWith(string prefix) =>
        Keys.Keys.Where(k => k.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)).OrderBy(k => k, StringComparer.Ordinal);
}
