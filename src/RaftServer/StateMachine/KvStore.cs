using System.Runtime.InteropServices;
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
    private readonly Dictionary<string, byte[]> _map;
    private readonly SortedSet<string> _keys;

    public SessionTable Sessions { get; }
    public long AppliedIndex { get; private set; }
    public int Count => _map.Count;
    /// <summary>Bytes of the live keys (UTF-8) and values (metrics).</summary>
    public long LiveBytes { get; private set; }

    public KvStore(SessionTable? sessions = null)
        : this(sessions ?? new SessionTable(), new Dictionary<string, byte[]>(StringComparer.Ordinal), new SortedSet<string>(StringComparer.Ordinal))
    {
    }

    private KvStore(SessionTable sessions, Dictionary<string, byte[]> map, SortedSet<string> keys)
    {
        Sessions = sessions;
        _map = map;
        _keys = keys;
    }

    /// <summary>
    /// The store's state as an immutable <see cref="KvImage"/>, for a snapshot. Runs on the node
    /// loop, so it only copies references in the dictionary's own (cache-friendly) order: one
    /// array slot per key, values shared, O(keys + remembered writes). The ordinal sort is left to
    /// whoever first reads <see cref="KvImage.Items"/>, off the loop.
    /// </summary>
    public KvImage CaptureImage()
    {
        var items = new KeyValueItem[_map.Count];
        var i = 0;
        foreach (var (key, value) in _map) items[i++] = new KeyValueItem(key, value);
        return KvImage.FromUnsorted(AppliedIndex, items, Sessions.CaptureImage());
    }

    /// <summary>A store in the state <paramref name="image"/> describes (sessions configured by <paramref name="sessionTtl"/> and <paramref name="maxSessions"/>).</summary>
    /// <exception cref="ArgumentException">a key appears twice, or the sessions are inconsistent.</exception>
    public static KvStore FromImage(KvImage image, TimeSpan? sessionTtl = null, int maxSessions = SessionTable.DefaultMaxSessions)
    {
        var items = image.Items;
        var map = new Dictionary<string, byte[]>(items.Length, StringComparer.Ordinal);
        for (var i = 0; i < items.Length; i++)
        {
            if (!map.TryAdd(items[i].Key, items[i].Value))
                throw new ArgumentException($"key \"{items[i].Key}\" appears twice");
        }
        // The set constructor builds its tree from the whole array at once rather than
        // rebalancing on every insert.
        var keys = new SortedSet<string>(items.Select(item => item.Key), StringComparer.Ordinal);
        long bytes = 0;
        foreach (var item in items) bytes += Encoding.UTF8.GetByteCount(item.Key) + item.Value.Length;
        return new KvStore(SessionTable.FromImage(image.Sessions, sessionTtl, maxSessions), map, keys) { AppliedIndex = image.AppliedIndex, LiveBytes = bytes };
    }

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
            ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_map, key, out existed);
            LiveBytes += existed ? command.Value.Length - slot!.Length : command.Key.Length + command.Value.Length;
            // Always a new array, never an update in place: images captured earlier share the old one.
            slot = command.Value.ToArray();
            if (!existed) _keys.Add(key);
        }
        else
        {
            existed = _map.Remove(key, out var removed);
            if (existed)
            {
                _keys.Remove(key);
                LiveBytes -= command.Key.Length + removed!.Length;
            }
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
