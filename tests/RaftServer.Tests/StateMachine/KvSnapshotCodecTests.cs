using System.Collections.Immutable;
using System.Diagnostics;
using System.Text;
using RaftServer.Consensus;
using RaftServer.StateMachine;
using Xunit.Abstractions;

namespace RaftServer.Tests.StateMachine;

public sealed class KvSnapshotCodecTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Ttl = TimeSpan.FromSeconds(10);
    private const int MaxSessions = 4;

    /// <summary>Set and Delete as the server writes them now (Put, Remove: with revisions).</summary>
    private static Entry Cmd(long index, CommandOp op, string key, string value = "", ulong client = 0, ulong seq = 0, long time = 1_000) =>
        new(index, 1, EntryKind.Command, op == CommandOp.Set
            ? Command.EncodePut(time, client, seq, key, Encoding.UTF8.GetBytes(value))
            : Command.EncodeRemove(time, client, seq, key));

    /// <summary>The legacy forms, as a log written before revisions holds them.</summary>
    private static Entry Legacy(long index, CommandOp op, string key, string value = "", long time = 1_000) =>
        new(index, 1, EntryKind.Command, Command.Encode(op, time, 0, 0, key, Encoding.UTF8.GetBytes(value)));

    private static Entry Data(long index, byte[] data) => new(index, 1, EntryKind.Command, data);

    private static KvStore NewStore() => new(new SessionTable(Ttl, MaxSessions));

    private static byte[] Encode(KvStore kv) => Encode(kv.CaptureImage());

    private static byte[] Encode(KvImage image)
    {
        var ms = new MemoryStream();
        KvSnapshotCodec.Write(image, ms);
        return ms.ToArray();
    }

    private static KvStore Decode(byte[] bytes) => KvSnapshotCodec.Read(new MemoryStream(bytes), Ttl, MaxSessions);

    /// <summary>A history with every kind of session state: several clients, a window overflow
    /// (so MaxEvicted is set), out-of-order sequences, deletes, no-ops and a client without session.</summary>
    private static List<Entry> History()
    {
        var entries = new List<Entry>();
        long i = 0;
        long t = 1_000;
        entries.Add(Entry.NoOp(++i, 1));
        for (ulong s = 1; s <= SessionTable.Window + 6; s++)
            entries.Add(Cmd(++i, CommandOp.Set, $"k{s % 9}", $"v{s}", client: 7, seq: s, time: t += 10));
        entries.Add(Cmd(++i, CommandOp.Set, "ключ", "значение", client: 8, seq: 3, time: t += 10));
        entries.Add(Cmd(++i, CommandOp.Set, "a", "x", client: 8, seq: 2, time: t += 10)); // out of order, inside the window
        entries.Add(Cmd(++i, CommandOp.Delete, "k3", client: 9, seq: 1, time: t += 10));
        entries.Add(Cmd(++i, CommandOp.Set, "big", new string('b', 100_000), client: 0, time: t += 10));
        entries.Add(Cmd(++i, CommandOp.Set, "", "empty key", client: 10, seq: 1, time: t += 10));
        // Leases (one holding two keys, one empty, one revoked), a condition that fails (remembered
        // by client 8's session) and one that holds.
        var lease = ++i;
        entries.Add(Data(lease, Command.EncodeLeaseGrant(t += 10, 0, 0, 5_000)));
        entries.Add(Data(++i, Command.EncodePut(t += 10, 0, 0, "leased/1", "x"u8, default, lease)));
        entries.Add(Data(++i, Command.EncodePut(t += 10, 0, 0, "leased/2", "y"u8, default, lease)));
        entries.Add(Data(++i, Command.EncodeLeaseGrant(t += 10, 0, 0, 7_000)));
        var revoked = ++i;
        entries.Add(Data(revoked, Command.EncodeLeaseGrant(t += 10, 0, 0, 9_000)));
        entries.Add(Data(++i, Command.EncodePut(t += 10, 0, 0, "gone", "z"u8, default, revoked)));
        entries.Add(Data(++i, Command.EncodeLeaseRevoke(t += 10, 0, 0, revoked, expired: true)));
        entries.Add(Data(++i, Command.EncodePut(t += 10, 8, 4, "a", "cas"u8, WriteCondition.IfModRevision(1))));
        entries.Add(Data(++i, Command.EncodePut(t += 10, 8, 5, "a", "cas"u8, WriteCondition.IfValue("x"u8.ToArray()))));
        return entries;
    }

    /// <summary>Commands that exercise every session answer after the snapshot point. After
    /// History the sessions are, least recently used first, 7, 8, 9, 10 (max 4), all last used
    /// before 2 s of log time; the ttl is 10 s.</summary>
    private static List<Entry> Continuation(long from)
    {
        var i = from;
        const long t = 3_000;
        const ulong last7 = SessionTable.Window + 6;
        return
        [
            Cmd(++i, CommandOp.Set, "k1", "retry", client: 7, seq: last7, time: t),       // duplicate: first answer again
            Cmd(++i, CommandOp.Set, "k1", "stale", client: 7, seq: 3, time: t),           // evicted from the window: stale
            Cmd(++i, CommandOp.Set, "a", "retry", client: 8, seq: 2, time: t),            // duplicate (the out-of-order one)
            Cmd(++i, CommandOp.Set, "e", "retry", client: 10, seq: 1, time: t),           // duplicate, idle 1.25 s < ttl
            Cmd(++i, CommandOp.Set, "a", "new", client: 8, seq: 1, time: t),              // inside the window, never seen: applies; LRU 7 9 10 8
            Cmd(++i, CommandOp.Set, "k1", "new", client: 7, seq: last7 + 1, time: t),     // applies; LRU 9 10 8 7
            Cmd(++i, CommandOp.Set, "n1", "1", client: 11, seq: 1, time: t),              // a fifth session: 9 (least recently used) goes
            Cmd(++i, CommandOp.Delete, "k3", client: 9, seq: 1, time: t),                 // forgotten, so its retry applies again (10 goes)
            Cmd(++i, CommandOp.Set, "e", "again", client: 10, seq: 1, time: t),           // forgotten too: applies (8 goes)
            Cmd(++i, CommandOp.Set, "late", "1", client: 7, seq: 100, time: t + 14_000),  // everyone idle since t expires first: 7 is new
            Cmd(++i, CommandOp.Set, "n1", "2", client: 11, seq: 1, time: t + 14_000),     // expired: applies again
            Cmd(++i, CommandOp.Set, "late", "2", client: 7, seq: 100, time: t + 14_001),  // survived: duplicate
            Entry.NoOp(++i, 2),
        ];
    }

    [Fact]
    public void A_restored_store_holds_the_same_pairs_and_answers_every_later_command_as_the_original()
    {
        var original = NewStore();
        foreach (var e in History()) original.Apply(e);

        var restored = Decode(Encode(original));

        Assert.Equal(original.AppliedIndex, restored.AppliedIndex);
        Assert.Equal(original.Count, restored.Count);
        Assert.Equal(original.Sessions.Count, restored.Sessions.Count);
        var before = original.Range("", "", int.MaxValue, long.MaxValue, out _);
        var after = restored.Range("", "", int.MaxValue, long.MaxValue, out _);
        Assert.Equal(before.Select(i => i.Key), after.Select(i => i.Key));
        Assert.Equal(before.Select(i => Convert.ToHexString(i.Value.Span)), after.Select(i => Convert.ToHexString(i.Value.Span)));
        Assert.Equal(before.Select(i => (i.CreateRevision, i.ModRevision, i.Version, i.Lease)), after.Select(i => (i.CreateRevision, i.ModRevision, i.Version, i.Lease)));
        Assert.Equal(original.Revision, restored.Revision);
        Assert.Equal(original.Leases.OrderBy(l => l.Id), restored.Leases.OrderBy(l => l.Id));
        Assert.Equal(2, restored.LeaseCount);
        Assert.Equal(["leased/1", "leased/2"], restored.KeysOf(before.Single(i => i.Key == "leased/1").Lease));

        var statuses = new List<ApplyStatus>();
        foreach (var e in Continuation(original.AppliedIndex))
        {
            var expected = original.Apply(e);
            Assert.Equal(expected, restored.Apply(e));
            statuses.Add(expected.Status);
        }
        // The continuation really exercised every answer (so the comparison above means something).
        Assert.Equal(
            [ApplyStatus.Duplicate, ApplyStatus.Stale, ApplyStatus.Duplicate, ApplyStatus.Duplicate,
             ApplyStatus.Applied, ApplyStatus.Applied, ApplyStatus.Applied, ApplyStatus.Applied, ApplyStatus.Applied,
             ApplyStatus.Applied, ApplyStatus.Applied, ApplyStatus.Duplicate, ApplyStatus.None],
            statuses);
        Assert.Equal(Encode(original), Encode(restored));
    }

    [Fact]
    public void Equal_state_gives_equal_bytes_whatever_the_insertion_order()
    {
        var a = NewStore();
        var b = NewStore();
        foreach (var e in History()) { a.Apply(e); b.Apply(e); }
        Assert.Equal(Encode(a), Encode(b));
        Assert.Equal(Encode(a), Encode(Decode(Encode(a))));

        // Keys inserted in different orders (no sessions, same log time): the same bytes.
        var c = new KvStore();
        var d = new KvStore();
        string[] keys = ["b", "a", "c", "B", "ä"];
        for (var i = 0; i < keys.Length; i++)
        {
            c.Apply(Legacy(i + 1, CommandOp.Set, keys[i], keys[i]));
            d.Apply(Legacy(i + 1, CommandOp.Set, keys[^(i + 1)], keys[^(i + 1)]));
        }
        Assert.Equal(Encode(c), Encode(d));
        Assert.NotEqual(Encode(c), Encode(a));
    }

    [Fact]
    public void An_image_does_not_change_when_the_store_goes_on_applying()
    {
        var kv = NewStore();
        foreach (var e in History()) kv.Apply(e);
        var image = kv.CaptureImage();
        var atCapture = Encode(image);

        foreach (var e in Continuation(kv.AppliedIndex)) kv.Apply(e);
        kv.Apply(Cmd(kv.AppliedIndex + 1, CommandOp.Set, "k1", "overwritten", time: 99_000));
        kv.Apply(Cmd(kv.AppliedIndex + 1, CommandOp.Delete, "a", time: 99_000));

        Assert.Equal(atCapture, Encode(image));
        Assert.NotEqual(atCapture, Encode(kv));
    }

    /// <summary>The same at a size where the tree has several levels: writes after a capture copy
    /// the nodes they change (splits, merges, replacements) and never touch the image's; a store
    /// made from an image shares its tree the same way.</summary>
    [Fact]
    public void Images_of_a_large_store_do_not_change_when_the_store_or_a_store_made_from_them_goes_on()
    {
        var seed = Environment.TickCount;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var kv = NewStore();
        long index = 0;
        for (var i = 0; i < 20_000; i++)
            kv.Apply(Cmd(++index, CommandOp.Set, $"key/{random.Next(30_000):D5}", $"v{index}"));
        var image = kv.CaptureImage();
        var atCapture = Encode(image);
        var copy = KvStore.FromImage(image, Ttl, MaxSessions);
        foreach (var store in new[] { kv, copy })
        {
            var next = index;
            for (var i = 0; i < 20_000; i++)
            {
                var key = $"key/{random.Next(30_000):D5}";
                store.Apply(random.Next(3) == 0 ? Cmd(++next, CommandOp.Delete, key) : Cmd(++next, CommandOp.Set, key, $"w{next}"));
            }
            Assert.Equal(atCapture, Encode(image));
            Assert.NotEqual(atCapture, Encode(store));
            RecordTree.CheckInvariants(store.CaptureImage().Tree);
        }
        RecordTree.CheckInvariants(image.Tree);
        Assert.Equal(atCapture, Encode(Decode(atCapture)));
    }

    [Fact]
    public void An_empty_store_round_trips()
    {
        var bytes = Encode(new KvStore());
        var restored = Decode(bytes);
        Assert.Equal(0, restored.Count);
        Assert.Equal(0, restored.AppliedIndex);
        Assert.Equal(0, restored.Sessions.Count);
        Assert.Equal(bytes, Encode(restored));
    }

    [Fact]
    public void Truncated_or_trailing_or_unknown_bytes_are_rejected()
    {
        var kv = NewStore();
        foreach (var e in History()) kv.Apply(e);
        var bytes = Encode(kv);

        foreach (var cut in new[] { 1, 2, 5, 4 + 8 + 3, bytes.Length / 2, bytes.Length - 1 })
        {
            var e = Assert.Throws<InvalidDataException>(() => Decode(bytes[..cut]));
            Assert.Contains("ends", e.Message);
        }
        Assert.Contains("after the last key", Assert.Throws<InvalidDataException>(() => Decode([.. bytes, 0])).Message);

        var otherFormat = (byte[])bytes.Clone();
        otherFormat[0] = 3;
        Assert.Contains("format 3", Assert.Throws<InvalidDataException>(() => Decode(otherFormat)).Message);

        // The first session's write count (after format, index, revision, time, count, id, last used, max evicted).
        var tooManyWrites = (byte[])bytes.Clone();
        tooManyWrites[4 + 8 + 8 + 8 + 4 + 8 + 8 + 8] = SessionTable.Window + 1;
        Assert.Contains("remembered writes", Assert.Throws<InvalidDataException>(() => Decode(tooManyWrites)).Message);
    }

    [Fact]
    public void Keys_out_of_order_or_repeated_sessions_are_rejected()
    {
        // Two keys of equal length swapped in the bytes: the body is well formed but out of order.
        var bytes = Encode(new KvImage(3, [new KeyValueItem("a", new byte[] { 1 }, 2, 2, 1), new KeyValueItem("b", new byte[] { 2 }, 3, 3, 1)], SessionTableImage.Empty));
        var a = Array.IndexOf(bytes, (byte)'a');
        var b = Array.IndexOf(bytes, (byte)'b');
        (bytes[a], bytes[b]) = (bytes[b], bytes[a]);
        Assert.Contains("key 1 is out of order", Assert.Throws<InvalidDataException>(() => Decode(bytes)).Message);
        var repeated = new KvImage(3, [new KeyValueItem("a", new byte[] { 1 }, 2, 2, 1), new KeyValueItem("a", new byte[] { 2 }, 3, 3, 1)], SessionTableImage.Empty);
        Assert.Contains("out of order", Assert.Throws<InvalidDataException>(() => Decode(Encode(repeated))).Message);
        Assert.Contains("appears twice", Assert.Throws<ArgumentException>(() => KvStore.FromImage(repeated)).Message);

        var session = new SessionImage(5, 0, 0, [new RememberedWrite(1, new WriteResult(1, false))]);
        var twice = new KvImage(1, [], new SessionTableImage(0, [session, session]));
        Assert.Contains("session 5 appears twice", Assert.Throws<InvalidDataException>(() => Decode(Encode(twice))).Message);
        var sameSequence = new KvImage(1, [], new SessionTableImage(0, [session with { Writes = [.. session.Writes, .. session.Writes] }]));
        Assert.Contains("sequence 1 appears twice", Assert.Throws<InvalidDataException>(() => Decode(Encode(sameSequence))).Message);
    }

    /// <summary>The body of format 1 (written before revisions), as an older RaftServer wrote it.</summary>
    private static byte[] EncodeFormat1(long applied, IEnumerable<(string Key, string Value)> items, SessionTableImage sessions)
    {
        var ms = new MemoryStream();
        var w = new BinaryWriter(ms);
        w.Write(1);
        w.Write(applied);
        w.Write(sessions.Now);
        w.Write(sessions.Sessions.Length);
        foreach (var session in sessions.Sessions)
        {
            w.Write(session.ClientId);
            w.Write(session.LastUsed);
            w.Write(session.MaxEvicted);
            w.Write(session.Writes.Length);
            foreach (var write in session.Writes)
            {
                w.Write(write.Sequence);
                w.Write(write.Result.Index);
                w.Write(write.Result.Existed ? (byte)1 : (byte)0);
            }
        }
        var sorted = items.OrderBy(i => i.Key, StringComparer.Ordinal).ToList();
        w.Write((long)sorted.Count);
        foreach (var (key, value) in sorted)
        {
            var k = Encoding.UTF8.GetBytes(key);
            var v = Encoding.UTF8.GetBytes(value);
            w.Write(k.Length);
            w.Write(k);
            w.Write(v.Length);
            w.Write(v);
        }
        return ms.ToArray();
    }

    [Fact]
    public void A_format_1_body_is_read_with_every_key_at_the_legacy_revision()
    {
        var session = new SessionImage(5, 900, 0, [new RememberedWrite(3, new WriteResult(7, true))]);
        var bytes = EncodeFormat1(40, [("b", "2"), ("a", "1")], new SessionTableImage(1_000, [session]));

        var kv = Decode(bytes);

        Assert.Equal(40, kv.AppliedIndex);
        Assert.Equal(0, kv.Revision);
        Assert.True(kv.TryGetItem("a", out var a));
        Assert.Equal(new KeyValueItem("a", a.Value, KvStore.LegacyRevision, KvStore.LegacyRevision, 1, 0), a);
        // The remembered write answers its retry as before.
        var retry = kv.Apply(Cmd(41, CommandOp.Set, "z", "retry", client: 5, seq: 3, time: 1_100));
        Assert.Equal(new ApplyResult(ApplyStatus.Duplicate, new WriteResult(7, true)), retry);
        // A condition on the legacy revision holds; the key then has a real one.
        var put = kv.Apply(Data(42, Command.EncodePut(1_200, 0, 0, "a", "new"u8, WriteCondition.IfModRevision(KvStore.LegacyRevision))));
        Assert.Equal(WriteStatus.Done, put.Result.Status);
        Assert.True(kv.TryGetItem("a", out a));
        Assert.Equal((KvStore.LegacyRevision, 42L, 2L), (a.CreateRevision, a.ModRevision, a.Version));
        Assert.Equal(42, kv.Revision);
        // Written back, it is format 2 and reads the same.
        var again = Decode(Encode(kv));
        Assert.Equal(2, BitConverter.ToInt32(Encode(kv)));
        Assert.True(again.TryGetItem("b", out var b));
        Assert.Equal((KvStore.LegacyRevision, KvStore.LegacyRevision, 1L), (b.CreateRevision, b.ModRevision, b.Version));
    }

    /// <summary>
    /// Nodes that loaded format-1 snapshots at different indexes, or replayed the legacy commands
    /// of an old log instead, end up with the same state: revisions come from the log alone.
    /// </summary>
    [Fact]
    public void Replicas_agree_whichever_format_1_snapshot_they_started_from()
    {
        var legacyLog = new List<Entry>
        {
            Entry.NoOp(1, 1),
            Legacy(2, CommandOp.Set, "a", "1"),
            Legacy(3, CommandOp.Set, "b", "1"),
            Legacy(4, CommandOp.Set, "a", "2"),
            Legacy(5, CommandOp.Delete, "b"),
            Legacy(6, CommandOp.Set, "b", "3"),
        };
        var upgraded = new List<Entry>
        {
            Cmd(7, CommandOp.Set, "a", "4"),
            Data(8, Command.EncodePut(1_000, 0, 0, "b", "5"u8, WriteCondition.IfModRevision(KvStore.LegacyRevision))),
        };
        byte[]? reference = null;
        for (var snapshotAt = 1; snapshotAt <= legacyLog.Count; snapshotAt++)
        {
            var old = new KvStore();
            foreach (var e in legacyLog.Take(snapshotAt)) old.Apply(e);
            var pairs = old.Range("", "", 100, long.MaxValue, out _).Select(i => (i.Key, Encoding.UTF8.GetString(i.Value.Span)));
            var node = Decode(EncodeFormat1(snapshotAt, pairs, SessionTableImage.Empty));
            foreach (var e in legacyLog.Skip(snapshotAt).Concat(upgraded)) node.Apply(e);
            var bytes = Encode(node);
            reference ??= bytes;
            Assert.Equal(reference, bytes);
        }
        var state = Decode(reference!);
        Assert.Equal(8, state.Revision);
        Assert.True(state.TryGetItem("b", out var b));
        Assert.Equal("5", Encoding.UTF8.GetString(b.Value.Span));
    }

    /// <summary>Not a timed assertion: prints what capturing (the node loop's part), encoding and
    /// decoding cost at 400,000 keys written in random order.</summary>
    [Fact]
    public void Capturing_400000_keys_copies_nothing()
    {
        const int keys = 400_000;
        var kv = new KvStore();
        var value = new string('v', 32);
        var order = Enumerable.Range(1, keys).ToArray();
        new Random(7).Shuffle(order);
        for (var i = 0; i < keys; i++)
            kv.Apply(Cmd(i + 1, CommandOp.Set, $"user/{order[i]:D8}", value, client: (ulong)(i % 1000) + 1, seq: (ulong)(i / 1000) + 1));

        var sw = Stopwatch.StartNew();
        var image = kv.CaptureImage();
        var firstCapture = sw.Elapsed;
        sw.Restart();
        image = kv.CaptureImage();
        var capture = sw.Elapsed;
        Assert.Equal(keys, image.Count);
        var first = image.Items.First();
        Assert.Equal("user/00000001", first.Key);
        // shared, not copied: the image's value is the store's own bytes
        Assert.True(kv.Range("user/00000001", "", 1, 100, out _)[0].Value.Span.Overlaps(first.Value.Span));

        var counter = new CountingNullStream();
        sw.Restart();
        KvSnapshotCodec.Write(image, counter);
        var write = sw.Elapsed;

        var ms = new MemoryStream((int)counter.Length);
        KvSnapshotCodec.Write(image, ms);
        ms.Position = 0;
        sw.Restart();
        var restored = KvSnapshotCodec.Read(ms);
        var read = sw.Elapsed;
        Assert.Equal(keys, restored.Count);
        sw.Restart();
        KvStore.FromImage(image);
        var adopt = sw.Elapsed;

        var mb = counter.Length / 1e6;
        output.WriteLine($"CaptureImage of {keys} keys and {image.Sessions.Sessions.Length} sessions (on the loop): first {firstCapture.TotalMilliseconds:F1} ms, again {capture.TotalMilliseconds:F1} ms");
        output.WriteLine($"encode: {mb:F1} MB in {write.TotalMilliseconds:F0} ms ({mb / write.TotalSeconds:F0} MB/s); decode into a new store: {read.TotalMilliseconds:F0} ms ({mb / read.TotalSeconds:F0} MB/s); a store from the image (checks every key, shares the tree): {adopt.TotalMilliseconds:F0} ms");
    }

    private sealed class CountingNullStream : Stream
    {
        public override long Length => _length;
        private long _length;
        public override void Write(byte[] buffer, int offset, int count) => _length += count;
        public override void Write(ReadOnlySpan<byte> buffer) => _length += buffer.Length;
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Position { get => _length; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
