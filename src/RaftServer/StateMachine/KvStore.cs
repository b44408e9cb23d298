using System.Collections.Immutable;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Unicode;
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
public readonly record struct KeyValueItem(string Key, ReadOnlyMemory<byte> Value, long CreateRevision = 0, long ModRevision = 0, long Version = 0, long Lease = 0);

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
/// replica. Owned by the node loop (no locks). Every key is one <see cref="KeyRecord"/> (its
/// revisions, key and value in one array) in one <see cref="RecordTree"/> ordered by
/// <see cref="KeyOrder"/> (ordinal order), which serves gets, ranges and snapshots
/// (docs/design.md, "The state machine's memory").
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

    /// <summary>Keys this long or shorter are encoded on the stack for a lookup.</summary>
    private const int StackKeyBytes = 1024;

    private sealed class LeaseRecord(long ttlMs)
    {
        public readonly long TtlMs = ttlMs;
        public readonly HashSet<string> Keys = new(StringComparer.Ordinal);
    }

    private readonly RecordTree _tree;
    private readonly Dictionary<long, LeaseRecord> _leases;
    private readonly List<KvEvent> _events = new();
    private readonly List<string> _revoked = new();

    public SessionTable Sessions { get; }
    public long AppliedIndex { get; private set; }
    /// <summary>The index of the last entry that changed a key (0: none yet).</summary>
    public long Revision { get; private set; }
    public int Count => _tree.Count;
    public int LeaseCount => _leases.Count;

    /// <summary>The key changes of the last <see cref="Apply"/> (valid until the next one), in the order made.</summary>
    public ReadOnlySpan<KvEvent> LastEvents => CollectionsMarshal.AsSpan(_events);

    /// <summary>What the last <see cref="Apply"/> did to the leases.</summary>
    public LeaseChange LastLeaseChange { get; private set; }

    /// <summary>Bytes of the live keys (UTF-8) and values (metrics).</summary>
    public long LiveBytes { get; private set; }

    public KvStore(SessionTable? sessions = null)
        : this(sessions ?? new SessionTable(), new RecordTree(), new Dictionary<long, LeaseRecord>())
    {
    }

    private KvStore(SessionTable sessions, RecordTree tree, Dictionary<long, LeaseRecord> leases)
    {
        Sessions = sessions;
        _tree = tree;
        _leases = leases;
    }

    /// <summary>
    /// The store's state as an immutable <see cref="KvImage"/>, for a snapshot. Runs on the node
    /// loop in O(leases + remembered writes): the keys are a frozen view of the tree (shared; the
    /// store copies the nodes it writes from now on, never the records).
    /// </summary>
    public KvImage CaptureImage()
    {
        var leases = new LeaseImage[_leases.Count];
        var i = 0;
        foreach (var (id, lease) in _leases) leases[i++] = new LeaseImage(id, lease.TtlMs);
        Array.Sort(leases, static (a, b) => a.Id.CompareTo(b.Id));
        return new KvImage(AppliedIndex, Revision, _tree.Freeze(), ImmutableCollectionsMarshal.AsImmutableArray(leases), Sessions.CaptureImage());
    }

    /// <summary>A store in the state <paramref name="image"/> describes (sessions configured by <paramref name="sessionTtl"/> and <paramref name="maxSessions"/>).
    /// The store starts from the image's tree itself (shared, copied node by node as it is written).</summary>
    /// <exception cref="ArgumentException">a key or lease appears twice, the keys are out of order, a key names a lease that does not exist, or the sessions are inconsistent.</exception>
    public static KvStore FromImage(KvImage image, TimeSpan? sessionTtl = null, int maxSessions = SessionTable.DefaultMaxSessions)
    {
        var leases = new Dictionary<long, LeaseRecord>(image.Leases.Length);
        foreach (var lease in image.Leases)
        {
            if (lease.Id <= 0 || lease.TtlMs <= 0) throw new ArgumentException($"lease {lease.Id} has a bad id or ttl ({lease.TtlMs} ms)");
            if (!leases.TryAdd(lease.Id, new LeaseRecord(lease.TtlMs))) throw new ArgumentException($"lease {lease.Id} appears twice");
        }
        long bytes = 0;
        byte[]? previous = null;
        foreach (var record in image.Tree.Records())
        {
            if (previous is not null)
            {
                var order = KeyOrder.Compare(KeyRecord.Key(previous), KeyRecord.Key(record));
                if (order == 0) throw new ArgumentException($"key \"{KeyRecord.KeyString(record)}\" appears twice");
                if (order > 0) throw new ArgumentException($"key \"{KeyRecord.KeyString(record)}\" is out of order");
            }
            previous = record;
            bytes += KeyRecord.LiveBytes(record);
            var leaseId = KeyRecord.Lease(record);
            if (leaseId == 0) continue;
            if (!leases.TryGetValue(leaseId, out var holder))
                throw new ArgumentException($"key \"{KeyRecord.KeyString(record)}\" is attached to lease {leaseId}, which does not exist");
            holder.Keys.Add(KeyRecord.KeyString(record));
        }
        return new KvStore(SessionTable.FromImage(image.Sessions, sessionTtl, maxSessions), new RecordTree(image.Tree), leases)
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
        // Keys are text: bytes that are not UTF-8 (never written by this server) become what decoding
        // them into a string and back makes of them (U+FFFD), as the store has always treated them.
        var key = command.Key;
        if (!Utf8.IsValid(key)) key = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(key));
        var result = command.Op switch
        {
            CommandOp.Set => LegacySet(index, key, command.Value),
            CommandOp.Delete => LegacyDelete(index, key),
            CommandOp.Put => Put(index, key, command),
            CommandOp.Remove => Remove(index, key, command),
            CommandOp.LeaseGrant => Grant(index, command.TtlMs),
            _ => Revoke(index, command.Lease),
        };
        if (session) Sessions.Record(command.ClientId, command.Sequence, result);
        return new ApplyResult(ApplyStatus.Applied, result);
    }

    // ---- the commands ----

    private WriteResult Put(long index, ReadOnlySpan<byte> key, in Command command)
    {
        var lease = command.Lease;
        // One descent: the slot of the key's record (null: absent) on a path this store may change.
        ref var slot = ref _tree.SlotFor(key);
        var old = slot;
        if (!Holds(command, old))
            return new WriteResult(index, old is not null, WriteStatus.CompareFailed, Revision, old is null ? 0 : KeyRecord.ModRevision(old));
        if (lease != 0 && !_leases.ContainsKey(lease))
            return new WriteResult(index, old is not null, WriteStatus.LeaseNotFound, Revision, old is null ? 0 : KeyRecord.ModRevision(old));
        byte[] record;
        if (old is null)
        {
            record = KeyRecord.Create(key, command.Value, index, index, 1, lease);
            _tree.Set(record);
        }
        else
        {
            var h = KeyRecord.Read(old);
            record = KeyRecord.Create(key, command.Value, h.CreateRevision, index, h.Version + 1, lease);
            slot = record;
        }
        var item = KeyRecord.ToItem(record);
        Stored(item.Key, record, old);
        Revision = index;
        _events.Add(new KvEvent(KvEventKind.Put, item));
        return new WriteResult(index, old is not null, WriteStatus.Done, index, index);
    }

    private WriteResult Remove(long index, ReadOnlySpan<byte> key, in Command command)
    {
        var old = _tree.Find(key);
        if (!Holds(command, old))
            return new WriteResult(index, old is not null, WriteStatus.CompareFailed, Revision, old is null ? 0 : KeyRecord.ModRevision(old));
        if (old is null) return new WriteResult(index, false, WriteStatus.Done, Revision, 0);
        Delete(index, key, old, KeyRecord.KeyString(old));
        Revision = index;
        return new WriteResult(index, true, WriteStatus.Done, index, index);
    }

    private static bool Holds(in Command command, byte[]? current) => command.Condition switch
    {
        ConditionKind.ModRevision => (current is null ? 0 : KeyRecord.ModRevision(current)) == command.CompareRevision,
        ConditionKind.Absent => current is null,
        ConditionKind.Value => current is not null && KeyRecord.Value(current).Span.SequenceEqual(command.CompareValue),
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
            foreach (var name in _revoked)
            {
                var key = Encoding.UTF8.GetBytes(name);
                var old = _tree.Find(key) ?? throw new InvalidOperationException($"lease {leaseId} holds \"{name}\", which is not in the store");
                Delete(index, key, old, name, detach: false);
            }
            _revoked.Clear();
            Revision = index;
        }
        return new WriteResult(index, true, WriteStatus.Done, Revision, 0);
    }

    /// <summary>A Set from a log written before revisions: revision <see cref="LegacyRevision"/>, no event.</summary>
    private WriteResult LegacySet(long index, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        var old = _tree.Find(key);
        var record = KeyRecord.Create(key, value, old is null ? LegacyRevision : KeyRecord.CreateRevision(old), LegacyRevision, 1, 0);
        _tree.Set(record);
        Stored(null, record, old);
        return new WriteResult(index, old is not null);
    }

    private WriteResult LegacyDelete(long index, ReadOnlySpan<byte> key)
    {
        var old = _tree.Remove(key);
        if (old is null) return new WriteResult(index, false);
        LiveBytes -= KeyRecord.LiveBytes(old);
        var lease = KeyRecord.Lease(old);
        if (lease != 0) _leases[lease].Keys.Remove(KeyRecord.KeyString(old));
        return new WriteResult(index, true);
    }

    /// <summary>Accounts for <paramref name="record"/> having replaced <paramref name="old"/> (null: added): live bytes and lease membership.</summary>
    private void Stored(string? name, byte[] record, byte[]? old)
    {
        LiveBytes += KeyRecord.LiveBytes(record) - (old is null ? 0 : KeyRecord.LiveBytes(old));
        var lease = KeyRecord.Lease(record);
        var oldLease = old is null ? 0 : KeyRecord.Lease(old);
        if (oldLease == lease) return;
        name ??= KeyRecord.KeyString(record);
        if (oldLease != 0) _leases[oldLease].Keys.Remove(name);
        if (lease != 0) _leases[lease].Keys.Add(name);
    }

    private void Delete(long index, ReadOnlySpan<byte> key, byte[] old, string name, bool detach = true)
    {
        _tree.Remove(key);
        LiveBytes -= KeyRecord.LiveBytes(old);
        var lease = KeyRecord.Lease(old);
        if (detach && lease != 0) _leases[lease].Keys.Remove(name);
        _events.Add(new KvEvent(KvEventKind.Delete, new KeyValueItem(name, ReadOnlyMemory<byte>.Empty, 0, index, 0, 0)));
    }

    // ---- reads ----

    /// <summary>The key's record (null: absent).</summary>
    private byte[]? Find(string key)
    {
        var max = Encoding.UTF8.GetMaxByteCount(key.Length);
        Span<byte> bytes = max <= StackKeyBytes ? stackalloc byte[StackKeyBytes] : new byte[max];
        return _tree.Find(bytes[..Encoding.UTF8.GetBytes(key, bytes)]);
    }

    public bool TryGet(string key, out ReadOnlyMemory<byte> value)
    {
        if (Find(key) is { } record)
        {
            value = KeyRecord.Value(record);
            return true;
        }
        value = default;
        return false;
    }

    /// <summary>The key with its revisions.</summary>
    public bool TryGetItem(string key, out KeyValueItem item)
    {
        if (Find(key) is { } record)
        {
            item = KeyRecord.ToItem(record, key);
            return true;
        }
        item = default;
        return false;
    }

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
        if (_tree.Count == 0) return items;
        var prefixBytes = Encoding.UTF8.GetBytes(prefix);
        var after = Encoding.UTF8.GetBytes(startAfter);
        var cursor = _tree.From(KeyOrder.Compare(after, prefixBytes) > 0 ? after : prefixBytes);
        long bytes = 0;
        while (cursor.MoveNext())
        {
            var record = cursor.Current;
            var key = KeyRecord.Key(record);
            if (after.Length > 0 && KeyOrder.Compare(key, after) <= 0) continue;
            if (!key.StartsWith(prefixBytes)) break;
            var size = KeyRecord.LiveBytes(record);
            if (items.Count >= limit || (items.Count > 0 && bytes + size > maxBytes))
            {
                more = true;
                break;
            }
            items.Add(KeyRecord.ToItem(record));
            bytes += size;
        }
        return items;
    }
}
