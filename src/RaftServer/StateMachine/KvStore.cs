using System.Collections.Immutable;
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

/// <summary>
/// A key, its value and its revisions (etcd's model): <see cref="CreateRevision"/> the revision
/// that created it, <see cref="ModRevision"/> the revision that last wrote it, <see cref="Version"/>
/// how many writes since it was created (1 after the first), <see cref="Lease"/> the lease that
/// holds it (0: none).
/// </summary>
public readonly record struct KeyValueItem(string Key, byte[] Value, long CreateRevision = 0, long ModRevision = 0, long Version = 0, long Lease = 0);

public enum KvEventKind : byte { Put = 0, Delete = 1 }

/// <summary>
/// One change of one key, as a watcher sees it: a Put carries the key as written; a Delete the
/// key's name with an empty value and, as <see cref="KeyValueItem.ModRevision"/>, the revision
/// of the delete.
/// </summary>
public readonly record struct KvEvent(KvEventKind Kind, KeyValueItem Item)
{
    public long Revision => Item.ModRevision;
}

public enum LeaseChangeKind : byte { None, Granted, Revoked }

/// <summary>What the last applied entry did to the leases (for the leader's lease keeper).</summary>
public readonly record struct LeaseChange(LeaseChangeKind Kind, long Id, long TtlMs);

/// <summary>
/// The replicated key-value store: committed entries are applied here in log order on every
/// replica. Owned by the node loop (no locks). Keys are ordinal-sorted for Range.
/// <para>
/// Revisions follow etcd's model with one difference: a revision is the log index of the entry
/// that made the change, so it needs no counter of its own and every replica derives the same
/// number from the log alone (snapshots of either format, restarts, installs included). The
/// store's <see cref="Revision"/> is the index of the last entry that changed a key; an entry
/// that changes nothing (a failed condition, a Remove of a missing key, a lease grant) leaves it.
/// All the keys an entry changes (a revoked lease's) share its revision.
/// </para>
/// <para>
/// Keys written before revisions existed (a format-1 snapshot, the legacy Set/Delete commands
/// of an old log) have revision <see cref="LegacyRevision"/>: index 1 is always the first
/// leader's no-op, so no real change ever has it. Legacy commands produce no watch events and
/// leave <see cref="Revision"/> alone, so every replica agrees whatever snapshot it started from.
/// </para>
/// </summary>
public sealed class KvStore
{
    /// <summary>The create and mod revision of keys written before the store kept revisions.</summary>
    public const long LegacyRevision = 1;

    private sealed class LeaseRecord(long ttlMs)
    {
        public readonly long TtlMs = ttlMs;
        public readonly HashSet<string> Keys = new(StringComparer.Ordinal);
    }

    private readonly Dictionary<string, KeyValueItem> _map;
    private readonly SortedSet<string> _keys;
    private readonly Dictionary<long, LeaseRecord> _leases;
    private readonly List<KvEvent> _events = new();
    private readonly List<string> _revoked = new();

    public SessionTable Sessions { get; }
    public long AppliedIndex { get; private set; }
    /// <summary>The index of the last entry that changed a key (0: none yet).</summary>
    public long Revision { get; private set; }
    public int Count => _map.Count;
    public int LeaseCount => _leases.Count;

    /// <summary>The key changes of the last <see cref="Apply"/> (valid until the next one), in the order made.</summary>
    public ReadOnlySpan<KvEvent> LastEvents => CollectionsMarshal.AsSpan(_events);

    /// <summary>What the last <see cref="Apply"/> did to the leases.</summary>
    public LeaseChange LastLeaseChange { get; private set; }

    /// <summary>Bytes of the live keys (UTF-8) and values (metrics).</summary>
    public long LiveBytes { get; private set; }

    public KvStore(SessionTable? sessions = null)
        : this(sessions ?? new SessionTable(), new Dictionary<string, KeyValueItem>(StringComparer.Ordinal), new SortedSet<string>(StringComparer.Ordinal), new Dictionary<long, LeaseRecord>())
    {
    }

    private KvStore(SessionTable sessions, Dictionary<string, KeyValueItem> map, SortedSet<string> keys, Dictionary<long, LeaseRecord> leases)
    {
        Sessions = sessions;
        _map = map;
        _keys = keys;
        _leases = leases;
    }

    /// <summary>
    /// The store's state as an immutable <see cref="KvImage"/>, for a snapshot. Runs on the node
    /// loop, so it only copies references in the dictionary's own (cache-friendly) order: one
    /// array slot per key, values shared, O(keys + leases + remembered writes). The ordinal sort
    /// is left to whoever first reads <see cref="KvImage.Items"/>, off the loop.
    /// </summary>
    public KvImage CaptureImage()
    {
        var items = new KeyValueItem[_map.Count];
        var i = 0;
        foreach (var item in _map.Values) items[i++] = item;
        var leases = new LeaseImage[_leases.Count];
        i = 0;
        foreach (var (id, lease) in _leases) leases[i++] = new LeaseImage(id, lease.TtlMs);
        Array.Sort(leases, static (a, b) => a.Id.CompareTo(b.Id));
        return KvImage.FromUnsorted(AppliedIndex, Revision, items, ImmutableCollectionsMarshal.AsImmutableArray(leases), Sessions.CaptureImage());
    }

    /// <summary>A store in the state <paramref name="image"/> describes (sessions configured by <paramref name="sessionTtl"/> and <paramref name="maxSessions"/>).</summary>
    /// <exception cref="ArgumentException">a key or lease appears twice, a key names a lease that does not exist, or the sessions are inconsistent.</exception>
    public static KvStore FromImage(KvImage image, TimeSpan? sessionTtl = null, int maxSessions = SessionTable.DefaultMaxSessions)
    {
        var leases = new Dictionary<long, LeaseRecord>(image.Leases.Length);
        foreach (var lease in image.Leases)
        {
            if (lease.Id <= 0 || lease.TtlMs <= 0) throw new ArgumentException($"lease {lease.Id} has a bad id or ttl ({lease.TtlMs} ms)");
            if (!leases.TryAdd(lease.Id, new LeaseRecord(lease.TtlMs))) throw new ArgumentException($"lease {lease.Id} appears twice");
        }
        var items = image.Items;
        var map = new Dictionary<string, KeyValueItem>(items.Length, StringComparer.Ordinal);
        for (var i = 0; i < items.Length; i++)
        {
            var item = items[i];
            if (!map.TryAdd(item.Key, item))
                throw new ArgumentException($"key \"{item.Key}\" appears twice");
            if (item.Lease == 0) continue;
            if (!leases.TryGetValue(item.Lease, out var holder))
                throw new ArgumentException($"key \"{item.Key}\" is attached to lease {item.Lease}, which does not exist");
            holder.Keys.Add(item.Key);
        }
        // The set constructor builds its tree from the whole array at once rather than
        // rebalancing on every insert.
        var keys = new SortedSet<string>(items.Select(item => item.Key), StringComparer.Ordinal);
        long bytes = 0;
        foreach (var item in items) bytes += ItemBytes(item);
        return new KvStore(SessionTable.FromImage(image.Sessions, sessionTtl, maxSessions), map, keys, leases)
        {
            AppliedIndex = image.AppliedIndex,
            Revision = image.Revision,
            LiveBytes = bytes,
        };
    }

    public ApplyResult Apply(Entry entry)
    {
        AppliedIndex = entry.Index;
        _events.Clear();
        LastLeaseChange = default;
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

        var index = entry.Index;
        var result = command.Op switch
        {
            CommandOp.Set => LegacySet(index, Encoding.UTF8.GetString(command.Key), command.Value),
            CommandOp.Delete => LegacyDelete(index, Encoding.UTF8.GetString(command.Key)),
            CommandOp.Put => Put(index, Encoding.UTF8.GetString(command.Key), command),
            CommandOp.Remove => Remove(index, Encoding.UTF8.GetString(command.Key), command),
            CommandOp.LeaseGrant => Grant(index, command.TtlMs),
            _ => Revoke(index, command.Lease),
        };
        if (session) Sessions.Record(command.ClientId, command.Sequence, result);
        return new ApplyResult(ApplyStatus.Applied, result);
    }

    // ---- the commands ----

    private WriteResult Put(long index, string key, in Command command)
    {
        var exists = _map.TryGetValue(key, out var old);
        if (!Holds(command, exists, old))
            return new WriteResult(index, exists, WriteStatus.CompareFailed, Revision, exists ? old.ModRevision : 0);
        var lease = command.Lease;
        if (lease != 0 && !_leases.ContainsKey(lease))
            return new WriteResult(index, exists, WriteStatus.LeaseNotFound, Revision, exists ? old.ModRevision : 0);

        // Always a new array, never an update in place: images captured earlier share the old one.
        var item = new KeyValueItem(key, command.Value.ToArray(), exists ? old.CreateRevision : index, index, exists ? old.Version + 1 : 1, lease);
        Store(key, item, exists, old);
        Revision = index;
        _events.Add(new KvEvent(KvEventKind.Put, item));
        return new WriteResult(index, exists, WriteStatus.Done, index, index);
    }

    private WriteResult Remove(long index, string key, in Command command)
    {
        var exists = _map.TryGetValue(key, out var old);
        if (!Holds(command, exists, old))
            return new WriteResult(index, exists, WriteStatus.CompareFailed, Revision, exists ? old.ModRevision : 0);
        if (!exists) return new WriteResult(index, false, WriteStatus.Done, Revision, 0);
        Delete(index, old);
        Revision = index;
        return new WriteResult(index, true, WriteStatus.Done, index, index);
    }

    private static bool Holds(in Command command, bool exists, in KeyValueItem current) => command.Condition switch
    {
        ConditionKind.ModRevision => (exists ? current.ModRevision : 0) == command.CompareRevision,
        ConditionKind.Absent => !exists,
        ConditionKind.Value => exists && current.Value.AsSpan().SequenceEqual(command.CompareValue),
        _ => true,
    };

    private WriteResult Grant(long index, long ttlMs)
    {
        // The lease's id is its grant's index: unique, and the same on every replica.
        _leases.Add(index, new LeaseRecord(Math.Max(1, ttlMs)));
        LastLeaseChange = new LeaseChange(LeaseChangeKind.Granted, index, Math.Max(1, ttlMs));
        return new WriteResult(index, false, WriteStatus.Done, Revision, 0);
    }

    /// <summary>Deletes the lease's keys in ordinal order (so every replica emits the same events),
    /// all at this entry's revision.</summary>
    private WriteResult Revoke(long index, long leaseId)
    {
        if (!_leases.Remove(leaseId, out var lease))
            return new WriteResult(index, false, WriteStatus.Done, Revision, 0);
        LastLeaseChange = new LeaseChange(LeaseChangeKind.Revoked, leaseId, lease.TtlMs);
        if (lease.Keys.Count > 0)
        {
            _revoked.Clear();
            _revoked.AddRange(lease.Keys);
            _revoked.Sort(StringComparer.Ordinal);
            foreach (var key in _revoked) Delete(index, _map[key], detach: false);
            _revoked.Clear();
            Revision = index;
        }
        return new WriteResult(index, true, WriteStatus.Done, Revision, 0);
    }

    /// <summary>A Set from a log written before revisions: revision <see cref="LegacyRevision"/>, no event.</summary>
    private WriteResult LegacySet(long index, string key, ReadOnlySpan<byte> value)
    {
        var exists = _map.TryGetValue(key, out var old);
        var item = new KeyValueItem(key, value.ToArray(), exists ? old.CreateRevision : LegacyRevision, LegacyRevision, 1, 0);
        Store(key, item, exists, old);
        return new WriteResult(index, exists);
    }

    private WriteResult LegacyDelete(long index, string key)
    {
        if (!_map.TryGetValue(key, out var old)) return new WriteResult(index, false);
        _map.Remove(key);
        _keys.Remove(key);
        LiveBytes -= ItemBytes(old);
        if (old.Lease != 0) _leases[old.Lease].Keys.Remove(key);
        return new WriteResult(index, true);
    }

    /// <summary>What a key and its value add to <see cref="LiveBytes"/>.</summary>
    private static long ItemBytes(in KeyValueItem item) => Encoding.UTF8.GetByteCount(item.Key) + item.Value.Length;

    private void Store(string key, in KeyValueItem item, bool existed, in KeyValueItem old)
    {
        _map[key] = item;
        LiveBytes += existed ? item.Value.Length - old.Value.Length : ItemBytes(item);
        if (!existed) _keys.Add(key);
        if (existed && old.Lease != 0 && old.Lease != item.Lease) _leases[old.Lease].Keys.Remove(key);
        if (item.Lease != 0 && (!existed || old.Lease != item.Lease)) _leases[item.Lease].Keys.Add(key);
    }

    private void Delete(long index, in KeyValueItem old, bool detach = true)
    {
        _map.Remove(old.Key);
        LiveBytes -= ItemBytes(old);
        _keys.Remove(old.Key);
        if (detach && old.Lease != 0) _leases[old.Lease].Keys.Remove(old.Key);
        _events.Add(new KvEvent(KvEventKind.Delete, new KeyValueItem(old.Key, [], 0, index, 0, 0)));
    }

    // ---- reads ----

    public bool TryGet(string key, out byte[] value)
    {
        if (_map.TryGetValue(key, out var item))
        {
            value = item.Value;
            return true;
        }
        value = null!;
        return false;
    }

    /// <summary>The key with its revisions.</summary>
    public bool TryGetItem(string key, out KeyValueItem item) => _map.TryGetValue(key, out item);

    /// <summary>The lease's time to live, if it exists.</summary>
    public bool TryGetLease(long id, out long ttlMs)
    {
        if (_leases.TryGetValue(id, out var lease))
        {
            ttlMs = lease.TtlMs;
            return true;
        }
        ttlMs = 0;
        return false;
    }

    /// <summary>Every lease (id, ttl) (for a new leader's lease keeper).</summary>
    public IEnumerable<LeaseImage> Leases => _leases.Select(l => new LeaseImage(l.Key, l.Value.TtlMs));

    /// <summary>The keys a lease holds, in ordinal order (empty for an unknown lease).</summary>
    public IReadOnlyList<string> KeysOf(long leaseId) =>
        _leases.TryGetValue(leaseId, out var lease) ? lease.Keys.Order(StringComparer.Ordinal).ToList() : [];

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
            var item = _map[key];
            var size = key.Length * 2 + item.Value.Length;
            if (items.Count >= limit || (items.Count > 0 && bytes + size > maxBytes))
            {
                more = true;
                break;
            }
            items.Add(item);
            bytes += size;
        }
        return items;
    }
}
