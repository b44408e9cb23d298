using System.Buffers.Binary;
using System.IO.Hashing;
using RaftServer.Consensus;

namespace RaftServer.Storage;

/// <summary>
/// The on-disk record format of the write-ahead log. Every record is
/// <c>[u32 length][u32 ~length][u32 crc32(payload)][payload]</c>, little-endian. The inverted length
/// lets recovery tell a damaged length field from a record cut short by a crash; the CRC covers
/// the payload. A payload starts with its type byte:
/// <list type="bullet">
/// <item>1 Entry: i64 index, i64 term, u8 kind, data (the rest)</item>
/// <item>2 HardState: i64 term, i32 votedFor, i64 commit</item>
/// <item>3 LogBase: i64 index. The log before this record is discarded and continues after
/// <c>index</c> (written when a follower installs a leader's snapshot at that index, and whenever
/// the log on disk holds no entry, so that a restart knows where it continues).</item>
/// </list>
/// A segment file starts with the 8-byte magic <c>RAFTWAL2</c> and then a HardState record (the
/// state current when the segment was opened), so whole old segments can be deleted later. After
/// the records come the zeros the file was made with (<see cref="WalSegmentPreparer"/>); the first
/// all-zero record header ends the records. <c>RAFTWAL1</c> segments (written before segments were
/// made ahead, ending at the end of the file) are read the same way; the new magic makes an older
/// RaftServer refuse a <c>RAFTWAL2</c> segment by name rather than take its zeros for damage.
/// </summary>
internal static class WalRecord
{
    public const int HeaderSize = 12;
    public const byte EntryType = 1;
    public const byte HardStateType = 2;
    public const byte LogBaseType = 3;
    public const int EntryFixedSize = 1 + 8 + 8 + 1;
    public const int HardStateSize = 1 + 8 + 4 + 8;
    public const int LogBaseSize = 1 + 8;
    /// <summary>No record is larger: an entry is at most a 1 MiB value, a 1 KiB key and a little framing.</summary>
    public const int MaxPayload = 64 << 20;
    public static ReadOnlySpan<byte> Magic => "RAFTWAL2"u8;
    public static ReadOnlySpan<byte> LegacyMagic => "RAFTWAL1"u8;

    public static int EntrySize(Entry e) => HeaderSize + EntryFixedSize + e.Data.Length;
    public static int HardStateRecordSize => HeaderSize + HardStateSize;
    public static int LogBaseRecordSize => HeaderSize + LogBaseSize;

    public static int WriteEntry(Span<byte> dest, Entry e)
    {
        var payload = dest[HeaderSize..];
        payload[0] = EntryType;
        BinaryPrimitives.WriteInt64LittleEndian(payload[1..], e.Index);
        BinaryPrimitives.WriteInt64LittleEndian(payload[9..], e.Term);
        payload[17] = (byte)e.Kind;
        e.Data.CopyTo(payload[EntryFixedSize..]);
        return Seal(dest, EntryFixedSize + e.Data.Length);
    }

    public static int WriteHardState(Span<byte> dest, HardState hs)
    {
        var payload = dest[HeaderSize..];
        payload[0] = HardStateType;
        BinaryPrimitives.WriteInt64LittleEndian(payload[1..], hs.Term);
        BinaryPrimitives.WriteInt32LittleEndian(payload[9..], hs.VotedFor);
        BinaryPrimitives.WriteInt64LittleEndian(payload[13..], hs.Commit);
        return Seal(dest, HardStateSize);
    }

    public static int WriteLogBase(Span<byte> dest, long index)
    {
        var payload = dest[HeaderSize..];
        payload[0] = LogBaseType;
        BinaryPrimitives.WriteInt64LittleEndian(payload[1..], index);
        return Seal(dest, LogBaseSize);
    }

    private static int Seal(Span<byte> dest, int payloadLength)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(dest, (uint)payloadLength);
        BinaryPrimitives.WriteUInt32LittleEndian(dest[4..], ~(uint)payloadLength);
        BinaryPrimitives.WriteUInt32LittleEndian(dest[8..], Crc32.HashToUInt32(dest.Slice(HeaderSize, payloadLength)));
        return HeaderSize + payloadLength;
    }

    public static Entry ReadEntry(ReadOnlySpan<byte> payload)
    {
        var index = BinaryPrimitives.ReadInt64LittleEndian(payload[1..]);
        var term = BinaryPrimitives.ReadInt64LittleEndian(payload[9..]);
        var kind = (EntryKind)payload[17];
        return new Entry(index, term, kind, payload[EntryFixedSize..].ToArray());
    }

    public static long ReadLogBase(ReadOnlySpan<byte> payload) => BinaryPrimitives.ReadInt64LittleEndian(payload[1..]);

    public static HardState ReadHardState(ReadOnlySpan<byte> payload) => new(
        BinaryPrimitives.ReadInt64LittleEndian(payload[1..]),
        BinaryPrimitives.ReadInt32LittleEndian(payload[9..]),
        BinaryPrimitives.ReadInt64LittleEndian(payload[13..]));
}
