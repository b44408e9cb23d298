using System.Buffers.Binary;
using System.IO.Hashing;
using Microsoft.Extensions.Logging;

namespace RaftServer.Storage;

/// <summary>
/// Reads one segment file at recovery: checks every record, feeds them to a
/// <see cref="WalReplay"/>, notes what compaction needs in the <see cref="WalSegment"/>, and
/// repairs the one kind of damage a crash may cause (a torn tail of the last segment). Any other
/// damage refuses to start.
/// A segment is made zero-filled at its full size (<see cref="WalSegmentPreparer"/>), so its
/// records end at the first all-zero record header (no record has a zero length) or at the end of
/// the file (segments written before that). Because records are written over zeros, a crash can
/// leave a write with some of its pages on disk and others still zero, in any order: the rules
/// for a torn tail follow etcd's WAL decoder (a zero length ends the records; a damaged record
/// with an all-zero piece between sector boundaries is torn).
/// </summary>
internal static class WalSegmentReader
{
    public static void Read(WalSegment segment, bool isLast, WalReplay replay, ILogger logger)
    {
        var bytes = File.ReadAllBytes(segment.Path);
        var span = bytes.AsSpan();
        segment.Size = bytes.Length;

        if (bytes.Length < WalRecord.Magic.Length || !(span[..WalRecord.Magic.Length].SequenceEqual(WalRecord.Magic) || span[..WalRecord.Magic.Length].SequenceEqual(WalRecord.LegacyMagic)))
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
            if (IsZeroHeader(span, pos))
            {
                EndAtZeroHeader(segment, span, pos, isLast, logger);
                return;
            }
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
                Truncate(segment, span, pos);
                return;
            }

            var payload = span.Slice((int)pos + WalRecord.HeaderSize, payloadLength);
            switch (payload[0])
            {
                case WalRecord.EntryType:
                    var entry = WalRecord.ReadEntry(payload);
                    if (replay.AddEntry(entry, firstOfSegment: segment.StartBase is null) is { } wrong)
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
        segment.Size = pos;
    }

    /// <summary>The record header at <paramref name="pos"/> (or what the file has of it) is all zeros: the records end here.</summary>
    private static bool IsZeroHeader(ReadOnlySpan<byte> span, long pos) =>
        span.Slice((int)pos, (int)Math.Min(WalRecord.HeaderSize, span.Length - pos)).IndexOfAnyExcept((byte)0) < 0;

    /// <summary>
    /// The records end at <paramref name="pos"/>. Zeros after it are the space made ahead of
    /// time. Data after it in the last segment is a write whose first sectors a crash lost (its
    /// later pages reached the disk): not acknowledged, so it goes. That needs the zeros to run
    /// at least to the end of <paramref name="pos"/>'s sector; shorter zeros amid data are damage,
    /// as is data after the records of an older segment (every write in it was fsynced before the
    /// next segment began).
    /// </summary>
    private static void EndAtZeroHeader(WalSegment segment, ReadOnlySpan<byte> span, long pos, bool isLast, ILogger logger)
    {
        segment.Size = pos;
        var data = span[(int)pos..].IndexOfAnyExcept((byte)0);
        if (data < 0) return;
        if (!isLast || pos + data < SectorEnd(pos, span.Length))
            throw new StorageCorruptException(
                $"{segment.Path}: offset {pos + data}: data after the end of the segment's records (offset {pos}) before the end of the log; refusing to start " +
                "(the log is damaged; restore this node's data directory or remove it so the node catches up from the leader)");
        logger.LogWarning("{Path}: offset {Offset}: the records end, but data follows at offset {Data} (a write whose first part a crash lost); truncating {Bytes} bytes",
            segment.Path, pos, pos + data, span.Length - pos);
        Truncate(segment, span, pos);
    }

    /// <summary>
    /// Cuts the log at <paramref name="pos"/> by writing zeros over the rest of the file (and
    /// fsyncing), so what follows reads as the space made ahead of time and the file keeps its
    /// size: the writes after a restart still go into written blocks.
    /// </summary>
    private static void Truncate(WalSegment segment, ReadOnlySpan<byte> span, long pos)
    {
        var last = pos + span[(int)pos..].LastIndexOfAnyExcept((byte)0);
        using (var f = new FileStream(segment.Path, FileMode.Open, FileAccess.Write))
        {
            f.Seek(pos, SeekOrigin.Begin);
            DurableFiles.WriteZeros(f, last + 1 - pos);
            f.Flush(true);
        }
        segment.Size = pos;
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
    /// A damaged record (in the last segment) is a torn tail, a write cut by a crash, when
    /// <list type="bullet">
    /// <item>its header or payload runs past the end of the file;</item>
    /// <item>it is the last thing written: only zeros (or nothing) follow it (for a damaged
    /// length: follow its header);</item>
    /// <item>a piece of it between two 512-byte sector boundaries of the file is all zeros, and
    /// so is the rest of that sector after it: a sector of the write never reached the disk (as
    /// etcd's <c>isTornEntry</c>, which looks at the piece alone; a few zero bytes at a record's
    /// edge, such as a small commit index, must not make damage before intact data look torn).
    /// For a damaged length only the header is looked at.</item>
    /// </list>
    /// </summary>
    private static bool IsTornTail(ReadOnlySpan<byte> span, long pos, int payloadLength, RecordProblem problem)
    {
        switch (problem)
        {
            case RecordProblem.ShortHeader or RecordProblem.PastEnd:
                return true;
            case RecordProblem.BadLength:
                return span[(int)(pos + WalRecord.HeaderSize)..].IndexOfAnyExcept((byte)0) < 0 || HasZeroSectorPiece(span, pos, WalRecord.HeaderSize);
            default:
                var length = WalRecord.HeaderSize + payloadLength;
                return span[(int)(pos + length)..].IndexOfAnyExcept((byte)0) < 0 || HasZeroSectorPiece(span, pos, length);
        }
    }

    private const int SectorBytes = 512;

    private static bool HasZeroSectorPiece(ReadOnlySpan<byte> span, long start, int length)
    {
        var end = start + length;
        for (var p = start; p < end;)
        {
            var sectorEnd = SectorEnd(p, span.Length);
            if (span.Slice((int)p, (int)(sectorEnd - p)).IndexOfAnyExcept((byte)0) < 0) return true;
            p = sectorEnd;
        }
        return false;
    }

    /// <summary>The next 512-byte boundary after <paramref name="pos"/>, or the end of the file if that comes first.</summary>
    private static long SectorEnd(long pos, long fileLength) => Math.Min(fileLength, (pos / SectorBytes + 1) * SectorBytes);
}
