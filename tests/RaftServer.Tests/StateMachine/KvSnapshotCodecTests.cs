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

    private static Entry Cmd(long index, CommandOp op, string key, string value = "", ulong client = 0, ulong seq = 0, long time = 1_000) =>
        new(index, 1, EntryKind.Command, Command.Encode(op, time, client, seq, key, Encoding.UTF8.GetBytes(value)));

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
        Assert.Equal(before.Select(i => Convert.ToHexString(i.Value)), after.Select(i => Convert.ToHexString(i.Value)));

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
            c.Apply(Cmd(i + 1, CommandOp.Set, keys[i], keys[i]));
            d.Apply(Cmd(i + 1, CommandOp.Set, keys[^(i + 1)], keys[^(i + 1)]));
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
        otherFormat[0] = 2;
        Assert.Contains("format 2", Assert.Throws<InvalidDataException>(() => Decode(otherFormat)).Message);

        // The first session's write count (after format, index, time, count, id, last used, max evicted).
        var tooManyWrites = (byte[])bytes.Clone();
        tooManyWrites[4 + 8 + 8 + 4 + 8 + 8 + 8] = SessionTable.Window + 1;
        Assert.Contains("remembered writes", Assert.Throws<InvalidDataException>(() => Decode(tooManyWrites)).Message);
    }

    [Fact]
    public void Keys_out_of_order_or_repeated_sessions_are_rejected()
    {
        // Two keys of equal length swapped in the bytes: the body is well formed but out of order.
        var bytes = Encode(new KvImage(3, [new KeyValueItem("a", [1]), new KeyValueItem("b", [2])], SessionTableImage.Empty));
        var a = Array.IndexOf(bytes, (byte)'a');
        var b = Array.IndexOf(bytes, (byte)'b');
        (bytes[a], bytes[b]) = (bytes[b], bytes[a]);
        Assert.Contains("key 1 is out of order", Assert.Throws<InvalidDataException>(() => Decode(bytes)).Message);
        var repeated = new KvImage(3, [new KeyValueItem("a", [1]), new KeyValueItem("a", [2])], SessionTableImage.Empty);
        Assert.Contains("out of order", Assert.Throws<InvalidDataException>(() => Decode(Encode(repeated))).Message);
        Assert.Contains("appears twice", Assert.Throws<ArgumentException>(() => KvStore.FromImage(repeated)).Message);

        var session = new SessionImage(5, 0, 0, [new RememberedWrite(1, new WriteResult(1, false))]);
        var twice = new KvImage(1, [], new SessionTableImage(0, [session, session]));
        Assert.Contains("session 5 appears twice", Assert.Throws<InvalidDataException>(() => Decode(Encode(twice))).Message);
        var sameSequence = new KvImage(1, [], new SessionTableImage(0, [session with { Writes = [.. session.Writes, .. session.Writes] }]));
        Assert.Contains("sequence 1 appears twice", Assert.Throws<InvalidDataException>(() => Decode(Encode(sameSequence))).Message);
    }

    /// <summary>Not a timed assertion: prints what capturing (the node loop's part), sorting,
    /// encoding and decoding cost at 400,000 keys written in random order.</summary>
    [Fact]
    public void Capturing_400000_keys_copies_references_only()
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
        sw.Restart();
        Assert.Equal(keys, image.Items.Length);
        var sort = sw.Elapsed;
        Assert.Equal("user/00000001", image.Items[0].Key);
        Assert.Same(kv.Range("user/00000001", "", 1, 100, out _)[0].Value, image.Items[0].Value); // shared, not copied

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
        var build = sw.Elapsed;

        var mb = counter.Length / 1e6;
        output.WriteLine($"CaptureImage of {keys} keys and {image.Sessions.Sessions.Length} sessions (on the loop): first {firstCapture.TotalMilliseconds:F1} ms, again {capture.TotalMilliseconds:F1} ms");
        output.WriteLine($"ordinal sort on first use of Items (off the loop): {sort.TotalMilliseconds:F0} ms");
        output.WriteLine($"encode: {mb:F1} MB in {write.TotalMilliseconds:F0} ms ({mb / write.TotalSeconds:F0} MB/s); decode into a new store: {read.TotalMilliseconds:F0} ms ({mb / read.TotalSeconds:F0} MB/s), of which about {build.TotalMilliseconds:F0} ms build the store's dictionary and sorted set");
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
