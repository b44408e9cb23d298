using System.Text;
using RaftServer.Consensus;
using RaftServer.StateMachine;

namespace RaftServer.Tests.StateMachine;

public sealed class KvStoreTests
{
    private long _index;

    private Entry Cmd(CommandOp op, string key, string value = "", ulong client = 0, ulong seq = 0, long time = 1_000) =>
        new(++_index, 1, EntryKind.Command, Command.Encode(op, time, client, seq, key, Encoding.UTF8.GetBytes(value)));

    private static string? Get(KvStore kv, string key) => kv.TryGet(key, out var v) ? Encoding.UTF8.GetString(v.Span) : null;

    [Fact]
    public void Commands_round_trip_through_their_encoding()
    {
        var data = Command.Encode(CommandOp.Set, 123456789, 42, 7, "ключ", [1, 2, 3]);
        Assert.True(Command.TryDecode(data, out var c));
        Assert.Equal(CommandOp.Set, c.Op);
        Assert.Equal(123456789, c.Timestamp);
        Assert.Equal(42UL, c.ClientId);
        Assert.Equal(7UL, c.Sequence);
        Assert.Equal("ключ", Encoding.UTF8.GetString(c.Key));
        Assert.Equal([1, 2, 3], c.Value.ToArray());

        Assert.False(Command.TryDecode([], out _));
        Assert.False(Command.TryDecode(new byte[Command.HeaderSize], out _)); // op 0
        var bad = (byte[])data.Clone();
        bad[25] = 0xFF; // key length past the end
        Assert.False(Command.TryDecode(bad, out _));
    }

    [Fact]
    public void Set_get_delete_with_existed_and_indexes()
    {
        var kv = new KvStore();
        var r1 = kv.Apply(Cmd(CommandOp.Set, "a", "1"));
        Assert.Equal(new ApplyResult(ApplyStatus.Applied, new WriteResult(1, false)), r1);
        Assert.True(kv.Apply(Cmd(CommandOp.Set, "a", "2")).Result.Existed);
        Assert.Equal("2", Get(kv, "a"));
        Assert.True(kv.Apply(Cmd(CommandOp.Delete, "a")).Result.Existed);
        Assert.False(kv.Apply(Cmd(CommandOp.Delete, "a")).Result.Existed);
        Assert.Null(Get(kv, "a"));
        Assert.Equal(4, kv.AppliedIndex);

        var noop = kv.Apply(Entry.NoOp(5, 2));
        Assert.Equal(ApplyStatus.None, noop.Status);
        Assert.Equal(5, kv.AppliedIndex);
        Assert.Equal(ApplyStatus.None, kv.Apply(new Entry(6, 2, EntryKind.Command, [9, 9])).Status);
    }

    [Fact]
    public void Range_walks_a_prefix_in_ordinal_order_with_pages()
    {
        var kv = new KvStore();
        foreach (var k in new[] { "b/2", "a", "b/10", "b/1", "b", "c", "B/x", "b/" })
            kv.Apply(Cmd(CommandOp.Set, k, k.ToUpperInvariant()));

        var all = kv.Range("b/", "", 100, long.MaxValue, out var more);
        Assert.Equal(["b/", "b/1", "b/10", "b/2"], all.Select(i => i.Key));
        Assert.False(more);

        var page1 = kv.Range("b/", "", 2, long.MaxValue, out more);
        Assert.Equal(["b/", "b/1"], page1.Select(i => i.Key));
        Assert.True(more);
        var page2 = kv.Range("b/", page1[^1].Key, 2, long.MaxValue, out more);
        Assert.Equal(["b/10", "b/2"], page2.Select(i => i.Key));
        Assert.False(more);

        Assert.Equal(["B/x", "a", "b", "b/", "b/1", "b/10", "b/2", "c"], kv.Range("", "", 100, long.MaxValue, out _).Select(i => i.Key));
        Assert.Empty(kv.Range("zzz", "", 10, long.MaxValue, out more));
        Assert.Empty(kv.Range("b/", "b/2", 10, long.MaxValue, out more));
        Assert.Empty(new KvStore().Range("", "", 10, 100, out more));

        // The byte budget cuts a page, but a page always has at least one item.
        var small = kv.Range("b/", "", 100, 1, out more);
        Assert.Single(small);
        Assert.True(more);
        Assert.Equal("B/1", Encoding.UTF8.GetString(kv.Range("b/1", "", 1, 1, out _)[0].Value.Span));
    }

    [Fact]
    public void A_retried_write_is_answered_with_its_first_result_and_not_applied_again()
    {
        var kv = new KvStore();
        var first = kv.Apply(Cmd(CommandOp.Set, "k", "one", client: 9, seq: 1));
        kv.Apply(Cmd(CommandOp.Set, "k", "two", client: 9, seq: 2));
        var retry = kv.Apply(Cmd(CommandOp.Set, "k", "one", client: 9, seq: 1));
        Assert.Equal(ApplyStatus.Duplicate, retry.Status);
        Assert.Equal(first.Result, retry.Result);
        Assert.Equal("two", Get(kv, "k"));

        var del = kv.Apply(Cmd(CommandOp.Delete, "k", client: 9, seq: 3));
        kv.Apply(Cmd(CommandOp.Set, "k", "three", client: 10, seq: 3)); // another client, same sequence: independent
        var delRetry = kv.Apply(Cmd(CommandOp.Delete, "k", client: 9, seq: 3));
        Assert.Equal(ApplyStatus.Duplicate, delRetry.Status);
        Assert.True(delRetry.Result.Existed);
        Assert.Equal(del.Result.Index, delRetry.Result.Index);
        Assert.Equal("three", Get(kv, "k"));

        // Client id 0 has no session: every write applies.
        kv.Apply(Cmd(CommandOp.Set, "n", "x", client: 0, seq: 1));
        Assert.Equal(ApplyStatus.Applied, kv.Apply(Cmd(CommandOp.Set, "n", "y", client: 0, seq: 1)).Status);
    }

    [Fact]
    public void Out_of_order_sequences_within_the_window_apply_and_older_ones_are_stale()
    {
        var kv = new KvStore();
        kv.Apply(Cmd(CommandOp.Set, "a", "6", client: 1, seq: 6));
        Assert.Equal(ApplyStatus.Applied, kv.Apply(Cmd(CommandOp.Set, "b", "5", client: 1, seq: 5)).Status); // in flight together
        for (ulong s = 7; s < 7 + SessionTable.Window; s++) kv.Apply(Cmd(CommandOp.Set, "c", s.ToString(), client: 1, seq: s));
        Assert.Equal(ApplyStatus.Stale, kv.Apply(Cmd(CommandOp.Set, "a", "old", client: 1, seq: 6)).Status);
        Assert.Equal(ApplyStatus.Stale, kv.Apply(Cmd(CommandOp.Set, "a", "older", client: 1, seq: 2)).Status);
        Assert.Equal("6", Get(kv, "a"));
        Assert.Equal(ApplyStatus.Duplicate, kv.Apply(Cmd(CommandOp.Set, "c", "x", client: 1, seq: 7 + SessionTable.Window - 1)).Status);
    }

    [Fact]
    public void Sessions_expire_by_log_time_and_are_bounded_deterministically()
    {
        var ttl = TimeSpan.FromSeconds(10);
        KvStore Make() => new(new SessionTable(ttl, maxSessions: 3));
        var a = Make();
        var b = Make();
        var entries = new List<Entry>
        {
            Cmd(CommandOp.Set, "k", "1", client: 1, seq: 1, time: 1_000),
            Cmd(CommandOp.Set, "k", "2", client: 2, seq: 1, time: 2_000),
            Cmd(CommandOp.Set, "k", "3", client: 3, seq: 1, time: 3_000),
            Cmd(CommandOp.Set, "k", "4", client: 4, seq: 1, time: 4_000), // evicts client 1 (least recently used)
            Cmd(CommandOp.Set, "k", "5", client: 3, seq: 2, time: 12_500), // expires client 2 (idle since 2 s, ttl 10 s)
            Cmd(CommandOp.Set, "k", "6", client: 4, seq: 2, time: 500), // a leader with a slow clock cannot move time back
        };
        foreach (var e in entries)
        {
            a.Apply(e);
            b.Apply(e);
        }
        Assert.Equal(2, a.Sessions.Count);
        Assert.Equal(a.Sessions.Count, b.Sessions.Count);
        // Client 1 and 2 are forgotten: a retry now applies again (documented limit: retry within the TTL).
        Assert.Equal(ApplyStatus.Applied, a.Apply(Cmd(CommandOp.Set, "k", "retry", client: 1, seq: 1, time: 13_000)).Status);
        Assert.Equal(ApplyStatus.Duplicate, a.Apply(Cmd(CommandOp.Set, "k", "x", client: 3, seq: 2, time: 13_000)).Status);
    }

    [Fact]
    public void Live_bytes_follow_sets_overwrites_deletes_and_a_restore()
    {
        var kv = new KvStore();
        kv.Apply(Cmd(CommandOp.Set, "ключ", "12345"));      // 8 bytes of UTF-8 key + 5
        Assert.Equal(13, kv.LiveBytes);
        kv.Apply(Cmd(CommandOp.Set, "ключ", "12"));         // the value shrinks by 3
        Assert.Equal(10, kv.LiveBytes);
        kv.Apply(Cmd(CommandOp.Set, "b", "xyz"));
        Assert.Equal(14, kv.LiveBytes);
        kv.Apply(Cmd(CommandOp.Delete, "missing"));
        Assert.Equal(14, kv.LiveBytes);
        kv.Apply(Cmd(CommandOp.Delete, "ключ"));
        Assert.Equal(4, kv.LiveBytes);
        kv.Apply(Cmd(CommandOp.Set, "c", "1", client: 9, seq: 1));
        kv.Apply(Cmd(CommandOp.Set, "c", "1", client: 9, seq: 1)); // a duplicate changes nothing
        Assert.Equal(6, kv.LiveBytes);
        Assert.Equal(6, KvStore.FromImage(kv.CaptureImage()).LiveBytes);
    }
}
