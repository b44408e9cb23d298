using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using DotNext.IO;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;

namespace DotNextNode;

/// <summary>
/// The key-value state machine: a Dictionary&lt;string, byte[]&gt; that DotNext's WriteAheadLog applies
/// committed entries to, one at a time, in log order. DotNext's SimpleStateMachine keeps the state in
/// memory and writes a snapshot file when ApplyAsync asks for one; the WAL then reclaims the log
/// entries the snapshot covers.
/// </summary>
sealed class KvStateMachine(DirectoryInfo location, long snapshotEvery) : SimpleStateMachine(location)
{
    /// <summary>Default: a snapshot every 50,000 entries. The benchmark's 10,000 keys of 256 B are ~2.8 MB,
    /// so at ~15,000 writes/s this is a snapshot every few seconds at most.</summary>
    public const long DefaultSnapshotEvery = 50_000;

    // Gets read while the WAL's applier writes: a lock, held only for a lookup or one assignment.
    readonly Lock _gate = new();
    readonly Dictionary<string, byte[]> _data = new(StringComparer.Ordinal);

    public bool TryGet(string key, out byte[]? value)
    {
        lock (_gate) return _data.TryGetValue(key, out value);
    }

    /// <summary>A command: u16 key length (little endian), the key in UTF-8, then the value.</summary>
    public static byte[] EncodeSet(string key, ReadOnlySpan<byte> value)
    {
        var keyLength = Encoding.UTF8.GetByteCount(key);
        var buffer = new byte[2 + keyLength + value.Length];
        BinaryPrimitives.WriteUInt16LittleEndian(buffer, checked((ushort)keyLength));
        Encoding.UTF8.GetBytes(key, buffer.AsSpan(2, keyLength));
        value.CopyTo(buffer.AsSpan(2 + keyLength));
        return buffer;
    }

    protected override ValueTask<bool> ApplyAsync(LogEntry entry, CancellationToken token)
    {
        // Entries without a payload (a new leader's no-op) still complete their index.
        if (entry.TryGetPayload(out var payload) && payload.Length >= 2)
        {
            var bytes = payload.IsSingleSegment ? payload.FirstSpan : payload.ToArray();
            var keyLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes);
            var key = Encoding.UTF8.GetString(bytes.Slice(2, keyLength));
            var value = bytes[(2 + keyLength)..].ToArray(); // the WAL's buffer is reused: copy
            lock (_gate) _data[key] = value;
        }
        // On the leader the Set call that proposed the entry waits on this (LogEntry.Context is
        // the object passed to ReplicateAsync; null on followers and after a restart).
        if (entry.Context is Applied applied) applied.TrySetResult(entry.Index);
        return new(entry.Index % snapshotEvery == 0);
    }

    protected override ValueTask PersistAsync(IAsyncBinaryWriter writer, CancellationToken token)
    {
        // Serialized under the lock into one buffer: count, then (key length, key, value length, value)*.
        var output = new ArrayBufferWriter<byte>();
        lock (_gate)
        {
            WriteInt(output, _data.Count);
            foreach (var (key, value) in _data)
            {
                var k = Encoding.UTF8.GetBytes(key);
                WriteInt(output, k.Length); output.Write(k);
                WriteInt(output, value.Length); output.Write(value);
            }
        }
        return writer.Invoke(output.WrittenMemory, token);

        static void WriteInt(ArrayBufferWriter<byte> o, int v)
        {
            BinaryPrimitives.WriteInt32LittleEndian(o.GetSpan(4), v);
            o.Advance(4);
        }
    }

    protected override async ValueTask RestoreAsync(FileInfo snapshotFile, CancellationToken token)
    {
        var bytes = await File.ReadAllBytesAsync(snapshotFile.FullName, token);
        var pos = 0;
        var count = ReadInt(bytes, ref pos);
        lock (_gate)
        {
            _data.Clear();
            for (var i = 0; i < count; i++)
            {
                var kl = ReadInt(bytes, ref pos);
                var key = Encoding.UTF8.GetString(bytes, pos, kl); pos += kl;
                var vl = ReadInt(bytes, ref pos);
                _data[key] = bytes.AsSpan(pos, vl).ToArray(); pos += vl;
            }
        }

        static int ReadInt(byte[] b, ref int p)
        {
            var v = BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(p));
            p += 4;
            return v;
        }
    }
}

/// <summary>Completed with the log index when the entry a Set proposed has been applied.</summary>
sealed class Applied() : TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
