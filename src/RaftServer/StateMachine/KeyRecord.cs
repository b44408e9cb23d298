using System.Buffers.Binary;
using System.Text;

namespace RaftServer.StateMachine;

/// <summary>
/// One key of the store as a single immutable byte array (one heap object per key, no string and
/// no separate value array), little-endian:
/// <code>
/// i64 create revision, i64 mod revision, i64 version, i64 lease, i32 key length, key UTF-8, value
/// </code>
/// A record is never changed once it is in the tree (a write makes a new one), so snapshots and
/// answers share it without copying.
/// </summary>
public static class KeyRecord
{
    private const int CreateOffset = 0;
    private const int ModOffset = 8;
    private const int VersionOffset = 16;
    private const int LeaseOffset = 24;
    private const int KeyLengthOffset = 32;
    public const int HeaderSize = 36;

    /// <param name="valueLength">the value's length when <paramref name="value"/> is left empty, to be
    /// filled in through <see cref="ValueSpan"/> before the record is shared (the snapshot reader).</param>
    public static byte[] Create(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, long createRevision, long modRevision, long version, long lease, int valueLength = -1)
    {
        if (valueLength < 0) valueLength = value.Length;
        var record = GC.AllocateUninitializedArray<byte>(HeaderSize + key.Length + valueLength);
        var span = record.AsSpan();
        SetRevisions(record, createRevision, modRevision, version, lease);
        BinaryPrimitives.WriteInt32LittleEndian(span[KeyLengthOffset..], key.Length);
        key.CopyTo(span[HeaderSize..]);
        value.CopyTo(span[(HeaderSize + key.Length)..]);
        return record;
    }

    /// <summary>Sets the revisions of a record not yet shared with anyone.</summary>
    internal static void SetRevisions(byte[] record, long createRevision, long modRevision, long version, long lease)
    {
        var span = record.AsSpan();
        BinaryPrimitives.WriteInt64LittleEndian(span[CreateOffset..], createRevision);
        BinaryPrimitives.WriteInt64LittleEndian(span[ModOffset..], modRevision);
        BinaryPrimitives.WriteInt64LittleEndian(span[VersionOffset..], version);
        BinaryPrimitives.WriteInt64LittleEndian(span[LeaseOffset..], lease);
    }

    /// <summary>The value bytes of a record not yet shared with anyone, to fill in.</summary>
    internal static Span<byte> ValueSpan(byte[] record) => record.AsSpan(HeaderSize + KeyLength(record));

    public static long CreateRevision(byte[] record) => BinaryPrimitives.ReadInt64LittleEndian(record.AsSpan(CreateOffset));
    public static long ModRevision(byte[] record) => BinaryPrimitives.ReadInt64LittleEndian(record.AsSpan(ModOffset));
    public static long Version(byte[] record) => BinaryPrimitives.ReadInt64LittleEndian(record.AsSpan(VersionOffset));
    public static long Lease(byte[] record) => BinaryPrimitives.ReadInt64LittleEndian(record.AsSpan(LeaseOffset));

    private static int KeyLength(byte[] record) => BinaryPrimitives.ReadInt32LittleEndian(record.AsSpan(KeyLengthOffset));

    public static ReadOnlySpan<byte> Key(byte[] record) => record.AsSpan(HeaderSize, KeyLength(record));
    public static ReadOnlyMemory<byte> Value(byte[] record) => record.AsMemory(HeaderSize + KeyLength(record));
    public static int ValueLength(byte[] record) => record.Length - HeaderSize - KeyLength(record);
    /// <summary>Key plus value bytes: what the record adds to the live data.</summary>
    public static int LiveBytes(byte[] record) => record.Length - HeaderSize;

    /// <summary>The key as a string (keys are valid UTF-8: the store checks them on the way in).</summary>
    public static string KeyString(byte[] record) => Encoding.UTF8.GetString(Key(record));

    /// <summary>The record as the store's callers see it; <paramref name="key"/> when the caller already has the string.</summary>
    public static KeyValueItem ToItem(byte[] record, string? key = null) =>
        new(key ?? KeyString(record), Value(record), CreateRevision(record), ModRevision(record), Version(record), Lease(record));

    /// <summary>Sets the create revision and version of a record not yet shared with anyone.</summary>
    internal static void SetHistory(byte[] record, long createRevision, long version)
    {
        BinaryPrimitives.WriteInt64LittleEndian(record.AsSpan(CreateOffset), createRevision);
        BinaryPrimitives.WriteInt64LittleEndian(record.AsSpan(VersionOffset), version);
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
