using System.Buffers;
using System.Collections.Immutable;
using System.Runtime.InteropServices;
using System.Text;

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

    // Strict both ways: keys were decoded from UTF-8 when applied, so they always encode exactly;
    // anything that does not is damage, not something to replace with U+FFFD.
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

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

        w.WriteInt64(image.Items.Length);
        foreach (var (key, value, create, mod, version, lease) in image.Items)
        {
            var keyLength = Utf8.GetByteCount(key);
            w.WriteInt32(keyLength);
            if (keyLength <= 4096)
            {
                w.Advance(Utf8.GetBytes(key, w.Reserve(keyLength)));
            }
            else
                w.WriteBytes(Utf8.GetBytes(key));
            w.WriteInt32(value.Length);
            w.WriteBytes(value);
            w.WriteInt64(create);
            w.WriteInt64(mod);
            w.WriteInt64(version);
            w.WriteInt64(lease);
        }
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
        var items = new List<KeyValueItem>((int)Math.Min(keyCount, 1 << 20));
        var keyBuffer = ArrayPool<byte>.Shared.Rent(4096);
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
                var keyBytes = keyBuffer.AsSpan(0, keyLength);
                r.ReadExactly(keyBytes);
                string key;
                try { key = Utf8.GetString(keyBytes); }
                catch (DecoderFallbackException) { throw new InvalidDataException($"key {i} is not valid UTF-8 (offset {r.Position - keyLength})"); }
                // Write emits keys strictly ascending; anything else (including a repeat) is damage.
                if (items.Count > 0 && string.CompareOrdinal(items[^1].Key, key) >= 0)
                    throw new InvalidDataException($"key {i} is out of order (offset {r.Position - keyLength})");
                var value = new byte[ReadLength(r, "value")];
                r.ReadExactly(value);
                if (legacy)
                {
                    items.Add(new KeyValueItem(key, value, KvStore.LegacyRevision, KvStore.LegacyRevision, 1, 0));
                    continue;
                }
                var item = new KeyValueItem(key, value, r.ReadInt64(), r.ReadInt64(), r.ReadInt64(), r.ReadInt64());
                if (item.CreateRevision < 1 || item.ModRevision < item.CreateRevision || item.ModRevision > applied || item.Version < 1 || item.Lease < 0)
                    throw new InvalidDataException($"key {i} has impossible revisions (create {item.CreateRevision}, mod {item.ModRevision}, version {item.Version}, lease {item.Lease}; offset {r.Position - 32})");
                items.Add(item);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(keyBuffer);
        }
        if (!r.AtEnd()) throw new InvalidDataException($"unexpected data after the last key (offset {r.Position})");

        var image = KvImage.FromSorted(applied, revision, items.ToArray(), [.. leases], new SessionTableImage(now, [.. sessions]));
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
