using System.Buffers.Binary;
using System.Text;

namespace RaftServer.StateMachine;

/// <summary>
/// What a command does. <see cref="Set"/> and <see cref="Delete"/> are the forms written before
/// the store kept revisions: they are still read from old logs (and applied without revisions,
/// see <see cref="KvStore"/>), never written. Every write the server makes now is one of the others.
/// </summary>
public enum CommandOp : byte
{
    /// <summary>Legacy plain write (read from old logs only).</summary>
    Set = 1,
    /// <summary>Legacy plain delete (read from old logs only).</summary>
    Delete = 2,
    /// <summary>Write a key: optionally under a condition, optionally attached to a lease.</summary>
    Put = 3,
    /// <summary>Delete a key, optionally under a condition.</summary>
    Remove = 4,
    /// <summary>Grant a lease; its id is the index of this entry.</summary>
    LeaseGrant = 5,
    /// <summary>Revoke a lease and delete its keys (asked by a client, or the leader's expiry).</summary>
    LeaseRevoke = 6,
}

/// <summary>The condition a Put or Remove applies under.</summary>
public enum ConditionKind : byte
{
    None = 0,
    /// <summary>The key's mod revision equals <see cref="Command.CompareRevision"/> (0: the key is absent).</summary>
    ModRevision = 1,
    /// <summary>The key does not exist.</summary>
    Absent = 2,
    /// <summary>The key exists and its value equals <see cref="Command.CompareValue"/>.</summary>
    Value = 3,
}

/// <summary>
/// A write as it travels in a log entry's data, little-endian. Every form starts with
/// <c>[u8 op][i64 timestamp ms][u64 client id][u64 sequence][u32 key length][key UTF-8]</c>; then
/// <list type="bullet">
/// <item>Set, Delete (legacy): <c>[value]</c> (the rest of the data);</item>
/// <item>Put: <c>[u8 flags][i64 lease if flags&amp;4][condition][value]</c>;</item>
/// <item>Remove: <c>[u8 flags][condition]</c>;</item>
/// <item>LeaseGrant: <c>[i64 ttl ms]</c>; LeaseRevoke: <c>[i64 lease id][u8 expired]</c> (key empty).</item>
/// </list>
/// flags&amp;3 is the <see cref="ConditionKind"/>; the condition is <c>[i64 revision]</c> for
/// ModRevision, <c>[u32 length][bytes]</c> for Value, nothing otherwise.
/// The timestamp is the proposing leader's clock; the state machine uses it (never its own clock)
/// to expire idle client sessions, so every replica decides the same way.
/// </summary>
public readonly ref struct Command
{
    public const int HeaderSize = 1 + 8 + 8 + 8 + 4;
    private const byte ConditionMask = 3;
    private const byte HasLease = 4;

    public CommandOp Op { get; }
    public long Timestamp { get; }
    public ulong ClientId { get; }
    public ulong Sequence { get; }
    public ReadOnlySpan<byte> Key { get; }
    public ReadOnlySpan<byte> Value { get; }
    public ConditionKind Condition { get; }
    public long CompareRevision { get; }
    public ReadOnlySpan<byte> CompareValue { get; }
    /// <summary>Put: the lease the key is attached to (0: none). LeaseRevoke: the lease revoked.</summary>
    public long Lease { get; }
    /// <summary>LeaseGrant: the lease's time to live in milliseconds.</summary>
    public long TtlMs { get; }
    /// <summary>LeaseRevoke: proposed by the leader because the lease expired (not asked by a client).</summary>
    public bool Expired { get; }

    private Command(CommandOp op, long timestamp, ulong clientId, ulong sequence, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value,
        ConditionKind condition, long compareRevision, ReadOnlySpan<byte> compareValue, long lease, long ttlMs, bool expired)
    {
        Op = op; Timestamp = timestamp; ClientId = clientId; Sequence = sequence; Key = key; Value = value;
        Condition = condition; CompareRevision = compareRevision; CompareValue = compareValue; Lease = lease; TtlMs = ttlMs; Expired = expired;
    }

    /// <summary>The legacy forms (Set, Delete): what tests of old logs write.</summary>
    public static byte[] Encode(CommandOp op, long timestamp, ulong clientId, ulong sequence, string key, ReadOnlySpan<byte> value)
    {
        if (op is not (CommandOp.Set or CommandOp.Delete)) throw new ArgumentException($"{op} has its own encoder", nameof(op));
        var keyLength = Encoding.UTF8.GetByteCount(key);
        var data = new byte[HeaderSize + keyLength + value.Length];
        var at = WriteHeader(data, op, timestamp, clientId, sequence, key, keyLength);
        value.CopyTo(data.AsSpan(at));
        return data;
    }

    /// <summary>A Put: <paramref name="value"/> under <paramref name="condition"/>, attached to <paramref name="lease"/> (0: none).</summary>
    public static byte[] EncodePut(long timestamp, ulong clientId, ulong sequence, string key, ReadOnlySpan<byte> value,
        WriteCondition condition = default, long lease = 0)
    {
        var keyLength = Encoding.UTF8.GetByteCount(key);
        var data = new byte[HeaderSize + keyLength + 1 + (lease != 0 ? 8 : 0) + ConditionSize(condition) + value.Length];
        var at = WriteHeader(data, CommandOp.Put, timestamp, clientId, sequence, key, keyLength);
        data[at++] = (byte)((byte)condition.Kind | (lease != 0 ? HasLease : 0));
        if (lease != 0)
        {
            BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(at), lease);
            at += 8;
        }
        at = WriteCondition(data, at, condition);
        value.CopyTo(data.AsSpan(at));
        return data;
    }

    /// <summary>A Remove under <paramref name="condition"/>.</summary>
    public static byte[] EncodeRemove(long timestamp, ulong clientId, ulong sequence, string key, WriteCondition condition = default)
    {
        var keyLength = Encoding.UTF8.GetByteCount(key);
        var data = new byte[HeaderSize + keyLength + 1 + ConditionSize(condition)];
        var at = WriteHeader(data, CommandOp.Remove, timestamp, clientId, sequence, key, keyLength);
        data[at++] = (byte)condition.Kind;
        WriteCondition(data, at, condition);
        return data;
    }

    public static byte[] EncodeLeaseGrant(long timestamp, ulong clientId, ulong sequence, long ttlMs)
    {
        var data = new byte[HeaderSize + 8];
        var at = WriteHeader(data, CommandOp.LeaseGrant, timestamp, clientId, sequence, "", 0);
        BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(at), ttlMs);
        return data;
    }

    /// <param name="expired">true when the leader revokes it because it expired (not a client's request).</param>
    public static byte[] EncodeLeaseRevoke(long timestamp, ulong clientId, ulong sequence, long leaseId, bool expired)
    {
        var data = new byte[HeaderSize + 9];
        var at = WriteHeader(data, CommandOp.LeaseRevoke, timestamp, clientId, sequence, "", 0);
        BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(at), leaseId);
        data[at + 8] = expired ? (byte)1 : (byte)0;
        return data;
    }

    private static int ConditionSize(WriteCondition c) => c.Kind switch
    {
        ConditionKind.ModRevision => 8,
        ConditionKind.Value => 4 + (c.Value?.Length ?? 0),
        _ => 0,
    };

    private static int WriteCondition(byte[] data, int at, WriteCondition c)
    {
        switch (c.Kind)
        {
            case ConditionKind.ModRevision:
                BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(at), c.Revision);
                return at + 8;
            case ConditionKind.Value:
                var value = c.Value ?? [];
                BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(at), value.Length);
                value.CopyTo(data.AsSpan(at + 4));
                return at + 4 + value.Length;
            default:
                return at;
        }
    }

    private static int WriteHeader(byte[] data, CommandOp op, long timestamp, ulong clientId, ulong sequence, string key, int keyLength)
    {
        var span = data.AsSpan();
        span[0] = (byte)op;
        BinaryPrimitives.WriteInt64LittleEndian(span[1..], timestamp);
        BinaryPrimitives.WriteUInt64LittleEndian(span[9..], clientId);
        BinaryPrimitives.WriteUInt64LittleEndian(span[17..], sequence);
        BinaryPrimitives.WriteInt32LittleEndian(span[25..], keyLength);
        Encoding.UTF8.GetBytes(key, span[HeaderSize..]);
        return HeaderSize + keyLength;
    }

    /// <summary>False for anything that is not a whole, well-formed command (no exception on damage).</summary>
    public static bool TryDecode(ReadOnlySpan<byte> data, out Command command)
    {
        command = default;
        if (data.Length < HeaderSize) return false;
        var op = (CommandOp)data[0];
        if (op is < CommandOp.Set or > CommandOp.LeaseRevoke) return false;
        var keyLength = BinaryPrimitives.ReadInt32LittleEndian(data[25..]);
        if (keyLength < 0 || keyLength > data.Length - HeaderSize) return false;
        var timestamp = BinaryPrimitives.ReadInt64LittleEndian(data[1..]);
        var clientId = BinaryPrimitives.ReadUInt64LittleEndian(data[9..]);
        var sequence = BinaryPrimitives.ReadUInt64LittleEndian(data[17..]);
        var key = data.Slice(HeaderSize, keyLength);
        var rest = data[(HeaderSize + keyLength)..];

        switch (op)
        {
            case CommandOp.Set or CommandOp.Delete:
                command = new Command(op, timestamp, clientId, sequence, key, rest, ConditionKind.None, 0, default, 0, 0, false);
                return true;
            case CommandOp.Put or CommandOp.Remove:
            {
                if (rest.Length < 1) return false;
                var flags = rest[0];
                if ((flags & ~(ConditionMask | HasLease)) != 0 || (op == CommandOp.Remove && (flags & HasLease) != 0)) return false;
                rest = rest[1..];
                long lease = 0;
                if ((flags & HasLease) != 0)
                {
                    if (rest.Length < 8) return false;
                    lease = BinaryPrimitives.ReadInt64LittleEndian(rest);
                    rest = rest[8..];
                }
                var condition = (ConditionKind)(flags & ConditionMask);
                long compareRevision = 0;
                ReadOnlySpan<byte> compareValue = default;
                if (condition == ConditionKind.ModRevision)
                {
                    if (rest.Length < 8) return false;
                    compareRevision = BinaryPrimitives.ReadInt64LittleEndian(rest);
                    rest = rest[8..];
                }
                else if (condition == ConditionKind.Value)
                {
                    if (rest.Length < 4) return false;
                    var length = BinaryPrimitives.ReadInt32LittleEndian(rest);
                    if (length < 0 || length > rest.Length - 4) return false;
                    compareValue = rest.Slice(4, length);
                    rest = rest[(4 + length)..];
                }
                if (op == CommandOp.Remove && !rest.IsEmpty) return false;
                command = new Command(op, timestamp, clientId, sequence, key, rest, condition, compareRevision, compareValue, lease, 0, false);
                return true;
            }
            case CommandOp.LeaseGrant:
                if (keyLength != 0 || rest.Length != 8) return false;
                command = new Command(op, timestamp, clientId, sequence, key, default, ConditionKind.None, 0, default, 0,
                    BinaryPrimitives.ReadInt64LittleEndian(rest), false);
                return true;
            default: // LeaseRevoke
                if (keyLength != 0 || rest.Length != 9 || rest[8] > 1) return false;
                command = new Command(op, timestamp, clientId, sequence, key, default, ConditionKind.None, 0, default,
                    BinaryPrimitives.ReadInt64LittleEndian(rest), 0, rest[8] == 1);
                return true;
        }
    }
}

/// <summary>A condition for <see cref="Command.EncodePut"/> and <see cref="Command.EncodeRemove"/>.</summary>
public readonly record struct WriteCondition(ConditionKind Kind, long Revision = 0, byte[]? Value = null)
{
    public static WriteCondition IfModRevision(long revision) => new(ConditionKind.ModRevision, revision);
    public static readonly WriteCondition IfAbsent = new(ConditionKind.Absent);
    public static WriteCondition IfValue(byte[] value) => new(ConditionKind.Value, 0, value);
}
