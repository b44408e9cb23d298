using System.Text;

namespace RaftServer.StateMachine;

/// <summary>
/// One key of the store as a single immutable byte array (one heap object per key, no string and
/// no separate value array):
/// <code>
/// varint key length, key UTF-8, varint create revision, varint (mod revision - create revision),
/// varint version, varint lease, value
/// </code>
/// The varints are LEB128 of the zigzag-encoded numbers: a key written once at index 1,000,000
/// without a lease has 7 bytes of header (a fixed layout would need 36). The key comes first so the
/// tree's comparisons reach it after one small varint. A record is never changed once it is in
/// the tree (a write makes a new one), so snapshots and answers share it without copying.
/// </summary>
public static class KeyRecord
{
    public static byte[] Create(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, long createRevision, long modRevision, long version, long lease) =>
        Create(key, value, createRevision, modRevision, version, lease, value.Length);

    /// <param name="valueLength">the value's length; when <paramref name="value"/> is shorter (empty) the
    /// rest is filled in through <see cref="ValueSpan"/> before the record is shared (the snapshot reader).</param>
    internal static byte[] Create(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, long createRevision, long modRevision, long version, long lease, int valueLength)
    {
        ulong keyLength = (ulong)key.Length, create = ZigZag(createRevision), delta = ZigZag(modRevision - createRevision), v = ZigZag(version), l = ZigZag(lease);
        var size = Size(keyLength) + key.Length + Size(create) + Size(delta) + Size(v) + Size(l) + valueLength;
        var record = GC.AllocateUninitializedArray<byte>(size);
        var span = record.AsSpan();
        var pos = Write(span, 0, keyLength);
        key.CopyTo(span[pos..]);
        pos += key.Length;
        pos = Write(span, pos, create);
        pos = Write(span, pos, delta);
        pos = Write(span, pos, v);
        pos = Write(span, pos, l);
        value.CopyTo(span[pos..]);
        return record;
    }

    /// <summary>The decoded header of a record.</summary>
    public readonly record struct Header(long CreateRevision, long ModRevision, long Version, long Lease, int ValueOffset);

    public static Header Read(byte[] record)
    {
        var span = (ReadOnlySpan<byte>)record;
        var pos = 0;
        var keyLength = (int)ReadVarint(span, ref pos);
        pos += keyLength;
        var create = UnZigZag(ReadVarint(span, ref pos));
        var mod = create + UnZigZag(ReadVarint(span, ref pos));
        var version = UnZigZag(ReadVarint(span, ref pos));
        var lease = UnZigZag(ReadVarint(span, ref pos));
        return new Header(create, mod, version, lease, pos);
    }

    public static long CreateRevision(byte[] record) => Read(record).CreateRevision;
    public static long ModRevision(byte[] record) => Read(record).ModRevision;
    public static long Version(byte[] record) => Read(record).Version;
    public static long Lease(byte[] record) => Read(record).Lease;

    public static ReadOnlySpan<byte> Key(byte[] record)
    {
        var pos = 0;
        var length = (int)ReadVarint(record, ref pos);
        return record.AsSpan(pos, length);
    }

    public static ReadOnlyMemory<byte> Value(byte[] record) => record.AsMemory(Read(record).ValueOffset);
    public static int ValueLength(byte[] record) => record.Length - Read(record).ValueOffset;

    /// <summary>Key plus value bytes: what the record adds to the live data.</summary>
    public static int LiveBytes(byte[] record) => Key(record).Length + ValueLength(record);

    /// <summary>The key as a string (keys are valid UTF-8: the store checks them on the way in).</summary>
    public static string KeyString(byte[] record) => Encoding.UTF8.GetString(Key(record));

    /// <summary>The record as the store's callers see it; <paramref name="key"/> when the caller already has the string.</summary>
    public static KeyValueItem ToItem(byte[] record, string? key = null)
    {
        var h = Read(record);
        return new(key ?? KeyString(record), record.AsMemory(h.ValueOffset), h.CreateRevision, h.ModRevision, h.Version, h.Lease);
    }

    /// <summary>The value bytes of a record not yet shared with anyone, to fill in.</summary>
    internal static Span<byte> ValueSpan(byte[] record) => record.AsSpan(Read(record).ValueOffset);

    private static ulong ZigZag(long value) => (ulong)((value << 1) ^ (value >> 63));
    private static long UnZigZag(ulong value) => (long)(value >> 1) ^ -(long)(value & 1);

    private static int Size(ulong value)
    {
        var size = 1;
        while (value >= 0x80)
        {
            value >>= 7;
            size++;
        }
        return size;
    }

    private static int Write(Span<byte> span, int pos, ulong value)
    {
        while (value >= 0x80)
        {
            span[pos++] = (byte)(value | 0x80);
            value >>= 7;
        }
        span[pos++] = (byte)value;
        return pos;
    }

    private static ulong ReadVarint(ReadOnlySpan<byte> span, ref int pos)
    {
        ulong value = 0;
        var shift = 0;
        byte b;
        do
        {
            b = span[pos++];
            value |= (ulong)(b & 0x7F) << shift;
            shift += 7;
        }
        while (b >= 0x80);
        return value;
    }
}

/// <summary>
/// The store's key order on UTF-8 bytes: exactly <see cref="string.CompareOrdinal(string, string)"/>
/// of the decoded strings (UTF-16 code unit order), so range reads, revocation order and the
/// snapshot format keep the order they have always had. UTF-8 byte order is code point order; the
/// two differ only between a character in U+E000..U+FFFF (lead byte EE or EF) and one above
/// U+FFFF (lead byte F0..F4, a surrogate pair in UTF-16, which sorts first there). At the first
/// differing byte both keys are at the same position of the same character, so that byte decides.
/// </summary>
public static class KeyOrder
{
    public static int Compare(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        var n = a.CommonPrefixLength(b);
        if (n == a.Length || n == b.Length) return a.Length.CompareTo(b.Length);
        int x = a[n], y = b[n];
        if (x >= 0xEE && y >= 0xEE && (x >= 0xF0) != (y >= 0xF0)) return x >= 0xF0 ? -1 : 1;
        return x - y;
    }
}
