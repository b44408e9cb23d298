using System.Text;
using RaftServer.Consensus;
using RaftServer.StateMachine;

namespace RaftServer.Tests.StateMachine;

/// <summary>Revisions, conditional writes, leases and the changes a watcher sees, in the state machine alone.</summary>
public sealed class KvRevisionTests
{
    private readonly KvStore _kv = new();
    private long _index = 1; // index 1 is the first leader's no-op

    private ApplyResult Apply(byte[] data) => _kv.Apply(new Entry(++_index, 1, EntryKind.Command, data));

    private ApplyResult Put(string key, string value, WriteCondition condition = default, long lease = 0, ulong client = 0, ulong seq = 0) =>
        Apply(Command.EncodePut(1_000, client, seq, key, Encoding.UTF8.GetBytes(value), condition, lease));

    private ApplyResult Remove(string key, WriteCondition condition = default, ulong client = 0, ulong seq = 0) =>
        Apply(Command.EncodeRemove(1_000, client, seq, key, condition));

    private long Grant(long ttlMs = 5_000) => Apply(Command.EncodeLeaseGrant(1_000, 0, 0, ttlMs)).Result.Index;

    private ApplyResult Revoke(long lease, bool expired = false) => Apply(Command.EncodeLeaseRevoke(1_000, 0, 0, lease, expired));

    private KeyValueItem Item(string key)
    {
        Assert.True(_kv.TryGetItem(key, out var item), $"{key} is missing");
        return item;
    }

    private List<(KvEventKind, string, long)> Events() => _kv.LastEvents.ToArray().Select(e => (e.Kind, e.Item.Key, e.Revision)).ToList();

    [Fact]
    public void Every_change_takes_its_entrys_index_as_revision_and_keys_keep_create_mod_and_version()
    {
        Put("a", "1");                                   // 2
        Put("b", "1");                                   // 3
        Put("a", "2");                                   // 4
        Assert.Equal(4, _kv.Revision);
        Assert.Equal((2L, 4L, 2L), (Item("a").CreateRevision, Item("a").ModRevision, Item("a").Version));
        Assert.Equal((3L, 3L, 1L), (Item("b").CreateRevision, Item("b").ModRevision, Item("b").Version));

        var removed = Remove("a");                       // 5
        Assert.Equal(new WriteResult(5, true, WriteStatus.Done, 5, 5), removed.Result);
        Assert.Equal([(KvEventKind.Delete, "a", 5L)], Events());
        var again = Remove("a");                         // 6: nothing to delete, no revision
        Assert.Equal(new WriteResult(6, false, WriteStatus.Done, 5, 0), again.Result);
        Assert.Empty(Events());
        Assert.Equal(5, _kv.Revision);

        Put("a", "3");                                   // 7: created anew
        Assert.Equal((7L, 7L, 1L), (Item("a").CreateRevision, Item("a").ModRevision, Item("a").Version));
        Assert.Equal([(KvEventKind.Put, "a", 7L)], Events());
        _kv.Apply(Entry.NoOp(++_index, 2));              // 8: no change
        Assert.Equal(7, _kv.Revision);
        Assert.Empty(Events());
    }

    [Fact]
    public void A_failed_condition_changes_nothing_and_says_where_the_key_stands()
    {
        Put("k", "v1");                                  // 2
        var stale = Put("k", "v2", WriteCondition.IfModRevision(1));
        Assert.Equal(new WriteResult(3, true, WriteStatus.CompareFailed, 2, 2), stale.Result);
        Assert.Empty(Events());
        Assert.Equal("v1", Encoding.UTF8.GetString(Item("k").Value.Span));

        var fresh = Put("k", "v2", WriteCondition.IfModRevision(2));
        Assert.Equal(new WriteResult(4, true, WriteStatus.Done, 4, 4), fresh.Result);

        Assert.Equal(WriteStatus.CompareFailed, Put("k", "x", WriteCondition.IfAbsent).Result.Status);
        Assert.Equal(WriteStatus.Done, Put("new", "x", WriteCondition.IfAbsent).Result.Status);
        Assert.Equal(WriteStatus.CompareFailed, Put("k", "x", WriteCondition.IfValue("v1"u8.ToArray())).Result.Status);
        Assert.Equal(WriteStatus.Done, Put("k", "v3", WriteCondition.IfValue("v2"u8.ToArray())).Result.Status);
        // Revision 0 means absent, as in etcd.
        Assert.Equal(WriteStatus.Done, Put("other", "x", WriteCondition.IfModRevision(0)).Result.Status);
        Assert.Equal(WriteStatus.CompareFailed, Put("other", "y", WriteCondition.IfModRevision(0)).Result.Status);
        // A value condition never holds for a missing key, even an empty value.
        Assert.Equal(WriteStatus.CompareFailed, Put("missing", "x", WriteCondition.IfValue([])).Result.Status);

        var mod = Item("k").ModRevision;
        var wrongDelete = Remove("k", WriteCondition.IfModRevision(mod - 1));
        Assert.Equal(new WriteResult(_index, true, WriteStatus.CompareFailed, _kv.Revision, mod), wrongDelete.Result);
        Assert.True(_kv.TryGetItem("k", out _));
        Assert.Equal(WriteStatus.Done, Remove("k", WriteCondition.IfModRevision(mod)).Result.Status);
        Assert.False(_kv.TryGetItem("k", out _));
    }

    [Fact]
    public void A_retried_conditional_write_answers_its_first_outcome_even_after_the_key_changed()
    {
        Put("k", "v1");                                                        // 2
        var first = Put("k", "mine", WriteCondition.IfModRevision(1), client: 9, seq: 1);
        Assert.Equal(WriteStatus.CompareFailed, first.Result.Status);
        Put("k", "v2");                                                        // the key moves on
        var retry = Put("k", "mine", WriteCondition.IfModRevision(1), client: 9, seq: 1);
        Assert.Equal(new ApplyResult(ApplyStatus.Duplicate, first.Result), retry);

        var won = Put("k", "won", WriteCondition.IfModRevision(Item("k").ModRevision), client: 9, seq: 2);
        Assert.Equal(WriteStatus.Done, won.Result.Status);
        Put("k", "later");
        Assert.Equal(new ApplyResult(ApplyStatus.Duplicate, won.Result), Put("k", "won", WriteCondition.IfModRevision(3), client: 9, seq: 2));
        Assert.Equal("later", Encoding.UTF8.GetString(Item("k").Value.Span));
    }

    [Fact]
    public void A_lease_holds_keys_until_it_is_revoked_and_then_they_go_at_one_revision()
    {
        var lease = Grant(3_000);                          // 2
        Assert.Equal(2, lease);
        Assert.Equal(new LeaseChange(LeaseChangeKind.Granted, 2, 3_000), _kv.LastLeaseChange);
        Assert.Equal(0, _kv.Revision);                      // a grant changes no key
        Put("lock/b", "x", lease: lease);                   // 3
        Put("lock/a", "y", lease: lease);                   // 4
        Put("free", "z");                                   // 5
        Assert.Equal(lease, Item("lock/a").Lease);
        Assert.Equal(["lock/a", "lock/b"], _kv.KeysOf(lease));

        var revoked = Revoke(lease, expired: true);         // 6
        Assert.Equal(new WriteResult(6, true, WriteStatus.Done, 6, 0), revoked.Result);
        Assert.Equal(new LeaseChange(LeaseChangeKind.Revoked, 2, 3_000), _kv.LastLeaseChange);
        // In key order, whatever the order they were attached in: every replica emits the same.
        Assert.Equal([(KvEventKind.Delete, "lock/a", 6L), (KvEventKind.Delete, "lock/b", 6L)], Events());
        Assert.False(_kv.TryGetItem("lock/a", out _));
        Assert.True(_kv.TryGetItem("free", out _));
        Assert.False(_kv.TryGetLease(lease, out _));

        var again = Revoke(lease);
        Assert.False(again.Result.Existed);
        Assert.Empty(Events());
    }

    [Fact]
    public void A_put_on_a_lease_that_is_gone_fails_and_changes_nothing()
    {
        Put("k", "v");
        var result = Put("k", "w", lease: 12345);
        Assert.Equal(WriteStatus.LeaseNotFound, result.Result.Status);
        Assert.Equal("v", Encoding.UTF8.GetString(Item("k").Value.Span));
        Assert.Empty(Events());
    }

    [Fact]
    public void Rewriting_or_deleting_a_leased_key_detaches_it()
    {
        var first = Grant();
        var second = Grant();
        Put("k", "1", lease: first);
        Put("k", "2", lease: second);
        Assert.Empty(_kv.KeysOf(first));
        Assert.Equal(["k"], _kv.KeysOf(second));
        Put("k", "3");
        Assert.Empty(_kv.KeysOf(second));
        Put("k", "4", lease: first);
        Remove("k");
        Assert.Empty(_kv.KeysOf(first));
        Put("k", "5");
        Revoke(first);
        Assert.True(_kv.TryGetItem("k", out _)); // no longer the lease's
    }

    [Fact]
    public void Legacy_commands_apply_at_the_legacy_revision_without_events()
    {
        _kv.Apply(new Entry(++_index, 1, EntryKind.Command, Command.Encode(CommandOp.Set, 1_000, 0, 0, "old", "1"u8)));
        Assert.Empty(Events());
        Assert.Equal(0, _kv.Revision);
        Assert.Equal((KvStore.LegacyRevision, KvStore.LegacyRevision, 1L), (Item("old").CreateRevision, Item("old").ModRevision, Item("old").Version));
        _kv.Apply(new Entry(++_index, 1, EntryKind.Command, Command.Encode(CommandOp.Set, 1_000, 0, 0, "old", "2"u8)));
        Assert.Equal(1, Item("old").Version);
        _kv.Apply(new Entry(++_index, 1, EntryKind.Command, Command.Encode(CommandOp.Delete, 1_000, 0, 0, "old", [])));
        Assert.Empty(Events());
        Assert.False(_kv.TryGetItem("old", out _));
    }

    [Fact]
    public void Commands_of_every_form_round_trip_and_damage_is_refused()
    {
        var put = Command.EncodePut(5, 6, 7, "key", "value"u8, WriteCondition.IfValue("old"u8.ToArray()), lease: 42);
        Assert.True(Command.TryDecode(put, out var c));
        Assert.Equal((CommandOp.Put, 5L, 6UL, 7UL, "key", "value", ConditionKind.Value, "old", 42L),
            (c.Op, c.Timestamp, c.ClientId, c.Sequence, Encoding.UTF8.GetString(c.Key), Encoding.UTF8.GetString(c.Value), c.Condition, Encoding.UTF8.GetString(c.CompareValue), c.Lease));

        var remove = Command.EncodeRemove(1, 2, 3, "k", WriteCondition.IfModRevision(99));
        Assert.True(Command.TryDecode(remove, out c));
        Assert.Equal((CommandOp.Remove, ConditionKind.ModRevision, 99L), (c.Op, c.Condition, c.CompareRevision));

        Assert.True(Command.TryDecode(Command.EncodeLeaseGrant(1, 2, 3, 4_000), out c));
        Assert.Equal((CommandOp.LeaseGrant, 4_000L), (c.Op, c.TtlMs));
        Assert.True(Command.TryDecode(Command.EncodeLeaseRevoke(1, 2, 3, 77, expired: true), out c));
        Assert.Equal((CommandOp.LeaseRevoke, 77L, true), (c.Op, c.Lease, c.Expired));

        // Cut anywhere inside the fixed parts, or with unknown flags: refused, no exception.
        for (var cut = 0; cut < put.Length - "value".Length; cut++)
            Assert.False(Command.TryDecode(put.AsSpan(0, cut), out _), $"cut at {cut}");
        var badFlags = (byte[])remove.Clone();
        badFlags[Command.HeaderSize + 1] = 0x80;
        Assert.False(Command.TryDecode(badFlags, out _));
        var removeWithLease = (byte[])remove.Clone();
        removeWithLease[Command.HeaderSize + 1] |= 4;
        Assert.False(Command.TryDecode(removeWithLease, out _));
        Assert.False(Command.TryDecode([.. remove, 0], out _));
        var unknownOp = (byte[])remove.Clone();
        unknownOp[0] = 7;
        Assert.False(Command.TryDecode(unknownOp, out _));
        Assert.Throws<ArgumentException>(() => Command.Encode(CommandOp.Put, 0, 0, 0, "k", []));
    }
}
