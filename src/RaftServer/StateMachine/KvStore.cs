using System.Text;
using RaftServer.Consensus;

namespace RaftServer.StateMachine;

public enum ApplyStatus
{
    /// <summary>Applied now.</summary>
    Applied,
    /// <summary>A retry of a write already applied: <see cref="ApplyResult.Result"/> is the first answer.</summary>
    Duplicate,
    /// <summary>The sequence number is older than the client's session window: not applied.</summary>
    Stale,
    /// <summary>Not a command (a no-op or configuration entry), or undecodable: nothing to answer.</summary>
    None,
}

public readonly record struct ApplyResult(ApplyStatus Status, WriteResult Result);

public readonly record struct KeyValueItem(string Key, byte[] Value);

/// <summary>
/// The replicated key-value store: committed entries are applied here in log order on every
/// replica. Owned by the node loop (no locks). Keys are ordinal-sorted for Range.
/// </summary>
public sealed class KvStore
{
    private readonly Dictionary<string, byte[]> _map = new(StringComparer.Ordinal);
    private readonly SortedSet<string> _keys = new(StringComparer.Ordinal);

    public SessionTable Sessions { get; }
    public long AppliedIndex { get; private set; }
    public int Count => _map.Count;

    public KvStore(SessionTable? sessions = null) => Sessions = sessions ?? new SessionTable();

    public ApplyResult Apply(Entry entry)
    {
        AppliedIndex = entry.Index;
        if (entry.Kind != EntryKind.Command || !Command.TryDecode(entry.Data, out var command))
            return new ApplyResult(ApplyStatus.None, default);

        Sessions.AdvanceTime(command.Timestamp);
        var session = command.ClientId != 0;
        if (session)
        {
            switch (Sessions.Check(command.ClientId, command.Sequence, out var previous))
            {
                case SessionCheck.Duplicate: return new ApplyResult(ApplyStatus.Duplicate, previous);
                case SessionCheck.Stale: return new ApplyResult(ApplyStatus.Stale, default);
            }
        }

        var key = Encoding.UTF8.GetString(command.Key);
        bool existed;
        if (command.Op == CommandOp.Set)
        {
            ref var slot = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(_map, key, out existed);
            slot = command.Value.ToArray();
            if (!existed) _keys.Add(key);
        }
        else
        {
            existed = _map.Remove(key);
            if (existed) _keys.Remove(key);
        }

        var result = new WriteResult(entry.Index, existed);
        if (session) Sessions.Record(command.ClientId, command.Sequence, result);
        return new ApplyResult(ApplyStatus.Applied, result);
    }

    public bool TryGet(string key, out byte[] value) => _map.TryGetValue(key, out value!);

    /// <summary>
    /// Keys starting with <paramref name="prefix"/> after <paramref name="startAfter"/>, in ordinal
    /// order, at most <paramref name="limit"/> items and about <paramref name="maxBytes"/> of keys and
    /// values (always at least one item); <paramref name="more"/> says another page exists.
    /// </summary>
    public List<KeyValueItem> Range(string prefix, string startAfter, int limit, long maxBytes, out bool more)
    {
        var items = new List<KeyValueItem>(Math.Min(limit, 256));
        more = false;
        if (_keys.Count == 0) return items;
        var lower = string.CompareOrdinal(startAfter, prefix) > 0 ? startAfter : prefix;
        var max = _keys.Max!;
        if (string.CompareOrdinal(lower, max) > 0) return items;

        long bytes = 0;
        foreach (var key in _keys.GetViewBetween(lower, max))
        {
            if (startAfter.Length > 0 && string.CompareOrdinal(key, startAfter) <= 0) continue;
            if (!key.StartsWith(prefix, StringComparison.Ordinal)) break;
            var value = _map[key];
            var size = key.Length * 2 + value.Length;
            if (items.Count >= limit || (items.Count > 0 && bytes + size > maxBytes))
            {
                more = true;
                break;
            }
            items.Add(new KeyValueItem(key, value));
            bytes += size;
        }
        return items;
    }
}
