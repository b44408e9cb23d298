using System.Buffers.Binary;
using System.IO.Hashing;
using Microsoft.Extensions.Logging;

namespace RaftServer.Storage;

/// <summary>
/// Reads one segment file at recovery: checks every record, feeds them to a
/// <see cref="WalReplay"/>, notes what compaction needs in the <see cref="WalSegment"/>, and
/// repairs the one kind of damage a crash may cause (a torn tail of the last segment). Any other
/// damage refuses to start.
/// </summary>
internal static class WalSegmentReader
{
    public static void Read(WalSegment segment, bool isLast, WalReplay replay, ILogger logger)
    {
        var bytes = File.ReadAllBytes(segment.Path);
        var span = bytes.AsSpan();
        segment.Size = bytes.Length;

        if (bytes.Length < WalRecord.Magic.Length || !span[..WalRecord.Magic.Length].SequenceEqual(WalRecord.Magic))
        {
            // A crash while a new segment was being created leaves it empty or cut inside the magic.
            if (isLast && bytes.Length < WalRecord.Magic.Length && (WalRecord.Magic.StartsWith(span) || span.IndexOfAnyExcept((byte)0) < 0))
            {
                logger.LogWarning("{Path}: incomplete segment header ({Length} bytes) truncated; the segment starts again", segment.Path, bytes.Length);
                using var f = new FileStream(segment.Path, FileMode.Create, FileAccess.Write);
                f.Write(WalRecord.Magic);
                Span<byte> hs = stackalloc byte[WalRecord.HardStateRecordSize];
                f.Write(hs[..WalRecord.WriteHardState(hs, replay.HardState)]);
                f.Flush(true);
                segment.Size = f.Length;
                return;
            }
            throw new StorageCorruptException($"{segment.Path}: offset 0: not a RaftPS log segment (bad magic); refusing to start");
        }

        long pos = WalRecord.Magic.Length;
        while (pos < bytes.Length)
        {
            var problem = CheckRecord(span, pos, out var payloadLength);
            if (problem is not null)
            {
                var tornTail = isLast && IsTornTail(span, pos, payloadLength, problem.Value);
                var reason = problem.Value switch
                {
                    RecordProblem.ShortHeader => "a record header cut short",
                    RecordProblem.BadLength => "a damaged record length",
                    RecordProblem.PastEnd => "a record cut short",
                    RecordProblem.BadCrc => "a CRC mismatch",
                    _ => "an unknown record type",
                };
                if (!tornTail)
                    throw new StorageCorruptException(
                        $"{segment.Path}: offset {pos}: {reason} before the end of the log; refusing to start " +
                        "(the log is damaged; restore this node's data directory or remove it so the node catches up from the leader)");
                logger.LogWarning("{Path}: offset {Offset}: {Reason} at the tail of the log; truncating {Bytes} bytes (a write interrupted by a crash)",
                    segment.Path, pos, reason, bytes.Length - pos);
                using (var f = new FileStream(segment.Path, FileMode.Open, FileAccess.Write))
                {
                    f.SetLength(pos);
                    f.Flush(true);
                }
                segment.Size = pos;
                break;
            }

            var payload = span.Slice((int)pos + WalRecord.HeaderSize, payloadLength);
            switch (payload[0])
            {
                case WalRecord.EntryType:
                    var entry = WalRecord.ReadEntry(payload);
                    if (replay.AddEntry(entry) is { } wrong)
                        throw new StorageCorruptException($"{segment.Path}: offset {pos}: {wrong}; refusing to start");
                    segment.NoteEntry(entry.Index);
                    break;
                case WalRecord.LogBaseType:
                    var logBase = WalRecord.ReadLogBase(payload);
                    if (logBase < 0)
                        throw new StorageCorruptException($"{segment.Path}: offset {pos}: impossible log start {logBase}; refusing to start");
                    replay.SetBase(logBase);
                    segment.NoteLogBase(logBase);
                    break;
                default:
                    replay.HardState = WalRecord.ReadHardState(payload);
                    break;
            }
            pos += WalRecord.HeaderSize + payloadLength;
        }
    }

    private enum RecordProblem { ShortHeader, BadLength, PastEnd, BadCrc, BadType }

    private static RecordProblem? CheckRecord(ReadOnlySpan<byte> span, long pos, out int payloadLength)
    {
        payloadLength = 0;
        if (span.Length - pos < WalRecord.HeaderSize) return RecordProblem.ShortHeader;
        var header = span.Slice((int)pos, WalRecord.HeaderSize);
        var length = BinaryPrimitives.ReadUInt32LittleEndian(header);
        var check = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
        if (check != ~length || length == 0 || length > WalRecord.MaxPayload) return RecordProblem.BadLength;
        payloadLength = (int)length;
        if (span.Length - pos - WalRecord.HeaderSize < length) return RecordProblem.PastEnd;
        var payload = span.Slice((int)pos + WalRecord.HeaderSize, payloadLength);
        if (Crc32.HashToUInt32(payload) != BinaryPrimitives.ReadUInt32LittleEndian(header[8..])) return RecordProblem.BadCrc;
        var ok = payload[0] switch
        {
            WalRecord.EntryType => payloadLength >= WalRecord.EntryFixedSize,
            WalRecord.HardStateType => payloadLength == WalRecord.HardStateSize,
            WalRecord.LogBaseType => payloadLength == WalRecord.LogBaseSize,
            _ => false,
        };
        return ok ? null : RecordProblem.BadType;
    }

    /// <summary>
    /// A damaged record is a torn tail (a write cut by a crash) when nothing that could be a
    /// later record follows it: a header or payload running past the end of the file, a bad
    /// record that ends exactly at the end, or only zero bytes from it to the end.
    /// </summary>
    private static bool IsTornTail(ReadOnlySpan<byte> span, long pos, int payloadLength, RecordProblem problem)
    {
        var rest = span[(int)pos..];
        if (rest.IndexOfAnyExcept((byte)0) < 0) return true;
        return problem switch
        {
            RecordProblem.ShortHeader or RecordProblem.PastEnd => true,
            RecordProblem.BadCrc or RecordProblem.BadType => rest.Length == WalRecord.HeaderSize + payloadLength,
            _ => false,
        };
    }
}
