using System.Buffers.Binary;
using System.Text;

namespace RaftServer.StateMachine;

public enum CommandOp : byte { Set = 1, Delete = 2 }

/// <summary>
/// A write as it travels in a log entry's data:
/// <c>[u8 op][i64 timestamp ms][u64 client id][u64 sequence][u32 key length][key UTF-8][value]</c>,
/// little-endian. The timestamp is the proposing leader's clock; the state machine uses it (never
/// its own clock) to expire idle client sessions, so every replica decides the same way.
/// </summary>
public readonly ref struct Command
{
    public const int HeaderSize = 1 + 8 + 8 + 8 + 4;

    public CommandOp Op { get; }
    public long Timestamp { get; }
    public ulong ClientId { get; }
    public ulong Sequence { get; }
    public ReadOnlySpan<byte> Key { get; }
    public ReadOnlySpan<byte> Value { get; }

    private Command(CommandOp op, long timestamp, ulong clientId, ulong sequence, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        Op = op; Timestamp = timestamp; ClientId = clientId; Sequence = sequence; Key = key; Value = value;
    }

    public static byte[] Encode(CommandOp op, long timestamp, ulong clientId, ulong sequence, string key, ReadOnlySpan<byte> value)
    {
        var keyLength = Encoding.UTF8.GetByteCount(key);
        var data = new byte[HeaderSize + keyLength + value.Length];
        var span = data.AsSpan();
        span[0] = (byte)op;
        BinaryPrimitives.WriteInt64LittleEndian(span[1..], timestamp);
        BinaryPrimitives.WriteUInt64LittleEndian(span[9..], clientId);
        BinaryPrimitives.WriteUInt64LittleEndian(span[17..], sequence);
        BinaryPrimitives.WriteInt32LittleEndian(span[25..], keyLength);
        Encoding.UTF8.GetBytes(key, span[HeaderSize..]);
        value.CopyTo(span[(HeaderSize + keyLength)..]);
        return data;
    }

    public static bool TryDecode(ReadOnlySpan<byte> data, out Command command)
    {
        command = default;
        if (data.Length < HeaderSize) return false;
        var op = (CommandOp)data[0];
        if (op is not (CommandOp.Set or CommandOp.Delete)) return false;
        var keyLength = BinaryPrimitives.ReadInt32LittleEndian(data[25..]);
        if (keyLength < 0 || keyLength > data.Length - HeaderSize) return false;
        command = new Command(op,
            BinaryPrimitives.ReadInt64LittleEndian(data[1..]),
            BinaryPrimitives.ReadUInt64LittleEndian(data[9..]),
            BinaryPrimitives.ReadUInt64LittleEndian(data[17..]),
            data.Slice(HeaderSize, keyLength),
            data[(HeaderSize + keyLength)..]);
        return true;
    }
}
