using System.Buffers;
using System.Collections.Immutable;
using System.Runtime.InteropServices;
using System.Text.Unicode;

namespace RaftServer.StateMachine;

/// <summary>
/// The byte form of a <see cref="KvImage"/> (the body of a snapshot file), little-endian. Format 2:
/// <code>
/// u32 format (2)
/// i64 applied index
/// i64 revision
/// i64 log time (ms)
/// i32 session count, then per session, least recently used first:
///     u64 client id, i64 last used (ms), u64 max evicted sequence,
///     i32 write count (at most the window), then per write, oldest first:
///         u64 sequence, i64 result index, u8 existed (0/1), u8 status, i64 revision, i64 key revision
/// i32 lease count, then per lease in ascending id order: i64 id, i64 ttl (ms)
/// i64 key count, then per key in ordinal order:
///     i32 key length, key UTF-8, i32 value length, value,
///     i64 create revision, i64 mod revision, i64 version, i64 lease (0: none)
/// </code>
/// Format 1 (written before revisions, leases and conditional writes) is still read: it has no
/// revision, no leases and no per-key revisions, and its sessions' writes end after the existed
/// flag. Its keys get <see cref="KvStore.LegacyRevision"/> as create and mod revision and version
/// 1, and the store revision 0, so every replica derives the same state from it whatever the
/// snapshot's index (see <see cref="KvStore"/>).
/// Keys are valid UTF-8 (the store checks them when applied); one that is not is damage, never
/// something to replace with U+FFFD.
/// Equal state gives equal bytes (everything is written in a defined order). Both directions
/// stream through bounded buffers; nothing holds the whole body.
/// </summary>
public static class KvSnapshotCodec
{
    public const uint FormatVersion = 2;
    /// <summary>The format before revisions (read, never written).</summary>
    public const uint LegacyFormatVersion = 1;
    /// <summary>No key or value in a valid snapshot is larger (values are at most 1 MiB; this
    /// bounds what a damaged length can make the reader allocate).</summary>
    public const int MaxItemBytes = 64 << 20;

    public static void Write(KvImage image, Stream destination)
    {
        var w = new LittleEndianWriter(destination);
        w.WriteInt32((int)FormatVersion);
        w.WriteInt64(image.AppliedIndex);
        w.WriteInt64(image.Revision);
        w.WriteInt64(image.Sessions.Now);

        w.WriteInt32(image.Sessions.Sessions.Length);
        foreach (var s in image.Sessions.Sessions)
        {
            w.WriteUInt64(s.ClientId);
            w.WriteInt64(s.LastUsed);
            w.WriteUInt64(s.MaxEvicted);
            w.WriteInt32(s.Writes.Length);
            foreach (var write in s.Writes)
            {
                w.WriteUInt64(write.Sequence);
                w.WriteInt64(write.Result.Index);
                w.WriteByte(write.Result.Existed ? (byte)1 : (byte)0);
                w.WriteByte((byte)write.Result.Status);
                w.WriteInt64(write.Result.Revision);
                w.WriteInt64(write.Result.KeyRevision);
            }
        }

        w.WriteInt32(image.Leases.Length);
        foreach (var lease in image.Leases)
        {
            w.WriteInt64(lease.Id);
            w.WriteInt64(lease.TtlMs);
        }

        w.WriteInt64(image.Count);
        var written = 0L;
        foreach (var record in image.Tree.Records())
        {
            var key = KeyRecord.Key(record);
            var value = KeyRecord.Value(record).Span;
            w.WriteInt32(key.Length);
            w.WriteBytes(key);
            w.WriteInt32(value.Length);
            w.WriteBytes(value);
            w.WriteInt64(KeyRecord.CreateRevision(record));
            w.WriteInt64(KeyRecord.ModRevision(record));
            w.WriteInt64(KeyRecord.Version(record));
            w.WriteInt64(KeyRecord.Lease(record));
            written++;
        }
        if (written != image.Count) throw new InvalidOperationException($"the image holds {written} keys but counts {image.Count}");
        w.Flush();
    }

    /// <summary>Reads a body written by <see cref="Write"/> into a new store, consuming exactly the body's bytes.</summary>
    /// <exception cref="InvalidDataException">the bytes are truncated or not a valid body; the message says what and where.</exception>
    public static KvStore Read(Stream source, TimeSpan? sessionTtl = null, int maxSessions = SessionTable.DefaultMaxSessions)
    {
        var r = new LittleEndianReader(source);
        var format = (uint)r.ReadInt32();
        if (format is not (FormatVersion or LegacyFormatVersion))
            throw new InvalidDataException($"unknown state machine format {format} (this server reads formats {LegacyFormatVersion} and {FormatVersion}): written by a newer RaftServer?");
        var legacy = format == LegacyFormatVersion;
        var applied = r.ReadInt64();
        if (applied < 0) throw new InvalidDataException($"negative applied index {applied}");
        var revision = legacy ? 0 : r.ReadInt64();
        if (revision < 0 || revision > applied) throw new InvalidDataException($"revision {revision} is outside 0..{applied} (the applied index)");
        var now = r.ReadInt64();

        var sessionCount = r.ReadInt32();
        if (sessionCount < 0) throw new InvalidDataException($"negative session count {sessionCount}");
        // Lists grow as data actually arrives: a damaged count cannot make us allocate up front.
        var sessions = new List<SessionImage>(Math.Min(sessionCount, 1024));
        for (var i = 0; i < sessionCount; i++)
        {
            var clientId = r.ReadUInt64();
            var lastUsed = r.ReadInt64();
            var maxEvicted = r.ReadUInt64();
            var writeCount = r.ReadInt32();
            if (writeCount < 0 || writeCount > SessionTable.Window)
                throw new InvalidDataException($"session {clientId}: {writeCount} remembered writes (at most {SessionTable.Window})");
            var writes = new RememberedWrite[writeCount];
            for (var j = 0; j < writeCount; j++)
            {
                var sequence = r.ReadUInt64();
                var index = r.ReadInt64();
                var existed = r.ReadByte() switch
                {
                    0 => false,
                    1 => true,
                    var b => throw new InvalidDataException($"session {clientId}: bad existed flag {b} at offset {r.Position - 1}"),
                };
                var result = new WriteResult(index, existed);
                if (!legacy)
                {
                    var status = r.ReadByte();
                    if (status > (byte)WriteStatus.LeaseNotFound)
                        throw new InvalidDataException($"session {clientId}: bad write status {status} at offset {r.Position - 1}");
                    result = result with { Status = (WriteStatus)status, Revision = r.ReadInt64(), KeyRevision = r.ReadInt64() };
                }
                writes[j] = new RememberedWrite(sequence, result);
            }
            sessions.Add(new SessionImage(clientId, lastUsed, maxEvicted, ImmutableCollectionsMarshal.AsImmutableArray(writes)));
        }

        var leases = new List<LeaseImage>();
        if (!legacy)
        {
            var leaseCount = r.ReadInt32();
            if (leaseCount < 0) throw new InvalidDataException($"negative lease count {leaseCount}");
            for (var i = 0; i < leaseCount; i++)
            {
                var lease = new LeaseImage(r.ReadInt64(), r.ReadInt64());
                if (leases.Count > 0 && leases[^1].Id >= lease.Id)
                    throw new InvalidDataException($"lease {lease.Id} is out of order (offset {r.Position - 16})");
                leases.Add(lease);
            }
        }

        var keyCount = r.ReadInt64();
        if (keyCount < 0 || keyCount > Array.MaxLength) throw new InvalidDataException($"bad key count {keyCount}");
        // Records go straight into the tree they are served from: nothing else holds the keys.
        var tree = new RecordTree.Builder();
        var keyBuffer = ArrayPool<byte>.Shared.Rent(4096);
        var valueBuffer = ArrayPool<byte>.Shared.Rent(4096);
        byte[]? previous = null;
        try
        {
            for (long i = 0; i < keyCount; i++)
            {
                var keyLength = ReadLength(r, "key");
                if (keyBuffer.Length < keyLength)
                {
                    ArrayPool<byte>.Shared.Return(keyBuffer);
                    keyBuffer = ArrayPool<byte>.Shared.Rent(keyLength);
                }
                var key = keyBuffer.AsSpan(0, keyLength);
                r.ReadExactly(key);
                if (!Utf8.IsValid(key)) throw new InvalidDataException($"key {i} is not valid UTF-8 (offset {r.Position - keyLength})");
                // Write emits keys strictly ascending; anything else (including a repeat) is damage.
                if (previous is not null && KeyOrder.Compare(KeyRecord.Key(previous), key) >= 0)
                    throw new InvalidDataException($"key {i} is out of order (offset {r.Position - keyLength})");
                var valueLength = ReadLength(r, "value");
                if (valueBuffer.Length < valueLength)
                {
                    ArrayPool<byte>.Shared.Return(valueBuffer);
                    valueBuffer = ArrayPool<byte>.Shared.Rent(valueLength);
                }
                var value = valueBuffer.AsSpan(0, valueLength);
                r.ReadExactly(value);
                byte[] record;
                if (legacy)
                {
                    record = KeyRecord.Create(key, value, KvStore.LegacyRevision, KvStore.LegacyRevision, 1, 0);
                }
                else
                {
                    long create = r.ReadInt64(), mod = r.ReadInt64(), version = r.ReadInt64(), lease = r.ReadInt64();
                    if (create < 1 || mod < create || mod > applied || version < 1 || lease < 0)
                        throw new InvalidDataException($"key {i} has impossible revisions (create {create}, mod {mod}, version {version}, lease {lease}; offset {r.Position - 32})");
                    record = KeyRecord.Create(key, value, create, mod, version, lease);
                }
                tree.Add(record);
                previous = record;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(keyBuffer);
            ArrayPool<byte>.Shared.Return(valueBuffer);
        }
        if (!r.AtEnd()) throw new InvalidDataException($"unexpected data after the last key (offset {r.Position})");

        var image = new KvImage(applied, revision, tree.Build(), [.. leases], new SessionTableImage(now, [.. sessions]));
        try
        {
            return KvStore.FromImage(image, sessionTtl, maxSessions);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException(e.Message, e);
        }
    }

    private static int ReadLength(LittleEndianReader r, string what)
    {
        var length = r.ReadInt32();
        if (length < 0 || length > MaxItemBytes)
            throw new InvalidDataException($"bad {what} length {length} at offset {r.Position - 4}");
        return length;
    }
}
