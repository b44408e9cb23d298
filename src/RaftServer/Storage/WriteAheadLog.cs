using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using Microsoft.Extensions.Logging;
using RaftServer.Consensus;

namespace RaftServer.Storage;

/// <summary>The log on disk is damaged somewhere other than its last record: the node must not start.</summary>
public sealed class StorageCorruptException(string message) : Exception(message);

/// <summary>
/// The durable log: append-only segment files (<c>0000000000000001.wal</c>, ...) of CRC-checked
/// records (<see cref="WalRecord"/>) holding log entries and hard state, so one fsync makes a whole
/// Ready durable (group commit). An entry whose index the log already has replaces that entry and
/// every later one; recovery replays the records in order to rebuild the log. A segment is closed
/// once it passes <see cref="SegmentBytes"/> and a new one begins with the current hard state, so
/// compaction (snapshots) can delete whole old segments.
/// </summary>
public sealed class WriteAheadLog : IDisposable
{
    public const long DefaultSegmentBytes = 64L << 20;
    private const string Extension = ".wal";

    private readonly string _dir;
    private readonly ILogger _logger;
    private readonly List<Segment> _segments = [];
    private FileStream _file = null!;
    private byte[] _buffer = new byte[256 << 10];
    private HardState _hardState = HardState.Empty;
    private long _lastIndex;

    public long SegmentBytes { get; }
    public string Directory => _dir;
    public HardState HardState => _hardState;
    public long LastIndex => _lastIndex;
    /// <summary>Bytes of every segment file together.</summary>
    public long SizeBytes
    {
        get
        {
            long total = 0;
            foreach (var s in _segments) total += s.Size;
            return total;
        }
    }

    private sealed class Segment(long seq, string path)
    {
        public long Seq { get; } = seq;
        public string Path { get; } = path;
        public long Size { get; set; }
        public long FirstIndex { get; set; }
        public long LastIndex { get; set; }
    }

    private WriteAheadLog(string dir, ILogger logger, long segmentBytes)
    {
        _dir = dir;
        _logger = logger;
        SegmentBytes = segmentBytes;
    }

    /// <summary>Opens (or creates) the log in <paramref name="dir"/> and recovers what it holds.</summary>
    /// <exception cref="StorageCorruptException">a record before the tail is damaged.</exception>
    public static WriteAheadLog Open(string dir, ILogger logger, out PersistedState recovered, long segmentBytes = DefaultSegmentBytes)
    {
        System.IO.Directory.CreateDirectory(dir);
        var wal = new WriteAheadLog(dir, logger, segmentBytes);
        recovered = wal.Recover();
        return wal;
    }

    private PersistedState Recover()
    {
        var files = new List<(long Seq, string Path)>();
        foreach (var path in System.IO.Directory.EnumerateFiles(_dir, "*" + Extension))
        {
            var name = Path.GetFileNameWithoutExtension(path);
            if (name.Length == 16 && long.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out var seq))
                files.Add((seq, path));
        }
        files.Sort((a, b) => a.Seq.CompareTo(b.Seq));

        var entries = new List<Entry>();
        for (var i = 0; i < files.Count; i++)
        {
            var segment = new Segment(files[i].Seq, files[i].Path);
            ReadSegment(segment, isLast: i == files.Count - 1, entries);
            _segments.Add(segment);
        }

        _lastIndex = entries.Count == 0 ? 0 : entries[^1].Index;
        if (_hardState.Commit > _lastIndex)
        {
            _logger.LogWarning("{Dir}: the commit index {Commit} is past the last log entry {Last}; using {Last}", _dir, _hardState.Commit, _lastIndex, _lastIndex);
            _hardState = _hardState with { Commit = _lastIndex };
        }

        if (_segments.Count == 0)
            StartSegment(1);
        else
        {
            var last = _segments[^1];
            _file = new FileStream(last.Path, FileMode.Open, FileAccess.Write, FileShare.Read, bufferSize: 0);
            _file.Seek(last.Size, SeekOrigin.Begin);
        }

        return new PersistedState { HardState = _hardState, Entries = entries };
    }

    private void ReadSegment(Segment segment, bool isLast, List<Entry> entries)
    {
        var bytes = File.ReadAllBytes(segment.Path);
        var span = bytes.AsSpan();
        segment.Size = bytes.Length;

        if (bytes.Length < WalRecord.Magic.Length || !span[..WalRecord.Magic.Length].SequenceEqual(WalRecord.Magic))
        {
            // A crash while a new segment was being created leaves it empty or cut inside the magic.
            if (isLast && bytes.Length < WalRecord.Magic.Length && (WalRecord.Magic.StartsWith(span) || span.IndexOfAnyExcept((byte)0) < 0))
            {
                _logger.LogWarning("{Path}: incomplete segment header ({Length} bytes) truncated; the segment starts again", segment.Path, bytes.Length);
                using var f = new FileStream(segment.Path, FileMode.Create, FileAccess.Write);
                f.Write(WalRecord.Magic);
                Span<byte> hs = stackalloc byte[WalRecord.HardStateRecordSize];
                f.Write(hs[..WalRecord.WriteHardState(hs, _hardState)]);
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
                _logger.LogWarning("{Path}: offset {Offset}: {Reason} at the tail of the log; truncating {Bytes} bytes (a write interrupted by a crash)",
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
            if (payload[0] == WalRecord.EntryType)
            {
                var entry = WalRecord.ReadEntry(payload);
                var last = entries.Count == 0 ? 0 : entries[^1].Index;
                if (entry.Index < 1 || entry.Index > last + 1)
                    throw new StorageCorruptException(
                        $"{segment.Path}: offset {pos}: entry {entry.Index} does not follow the log's last index {last}; refusing to start");
                if (entry.Index <= last)
                    entries.RemoveRange((int)(entry.Index - 1), (int)(last - entry.Index + 1));
                entries.Add(entry);
                if (segment.FirstIndex == 0 || entry.Index < segment.FirstIndex) segment.FirstIndex = entry.Index;
                segment.LastIndex = entry.Index;
            }
            else
                _hardState = WalRecord.ReadHardState(payload);
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

    /// <summary>
    /// Appends <paramref name="entries"/> (replacing any at the same or later indexes) and then
    /// <paramref name="hardState"/>, and fsyncs once. Returns once everything is on disk.
    /// </summary>
    public void Save(HardState? hardState, IReadOnlyList<Entry> entries)
    {
        if (hardState is null && entries.Count == 0) return;

        var size = hardState is null ? 0 : WalRecord.HardStateRecordSize;
        for (var i = 0; i < entries.Count; i++) size += WalRecord.EntrySize(entries[i]);

        var current = _segments[^1];
        if (current.Size + size > SegmentBytes && current.Size > WalRecord.Magic.Length + WalRecord.HardStateRecordSize)
        {
            StartSegment(current.Seq + 1);
            current = _segments[^1];
        }

        if (_buffer.Length < size) _buffer = new byte[Math.Max(size, _buffer.Length * 2)];
        var span = _buffer.AsSpan();
        var n = 0;
        for (var i = 0; i < entries.Count; i++)
        {
            var e = entries[i];
            n += WalRecord.WriteEntry(span[n..], e);
            if (current.FirstIndex == 0 || e.Index < current.FirstIndex) current.FirstIndex = e.Index;
            current.LastIndex = e.Index;
        }
        if (hardState is { } hs)
        {
            n += WalRecord.WriteHardState(span[n..], hs);
            _hardState = hs;
        }
        if (entries.Count > 0) _lastIndex = entries[^1].Index;

        _file.Write(_buffer, 0, n);
        _file.Flush(flushToDisk: true);
        current.Size += n;
        if (_buffer.Length > 4 << 20) _buffer = new byte[256 << 10]; // don't keep a huge buffer after one large batch
    }

    private void StartSegment(long seq)
    {
        _file?.Dispose();
        var path = Path.Combine(_dir, seq.ToString("D16", CultureInfo.InvariantCulture) + Extension);
        _file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read, bufferSize: 0);
        Span<byte> head = stackalloc byte[WalRecord.Magic.Length + WalRecord.HardStateRecordSize];
        WalRecord.Magic.CopyTo(head);
        var n = WalRecord.Magic.Length + WalRecord.WriteHardState(head[WalRecord.Magic.Length..], _hardState);
        _file.Write(head[..n]);
        _file.Flush(flushToDisk: true);
        DurableFiles.SyncDirectory(_dir);
        _segments.Add(new Segment(seq, path) { Size = n });
    }

    public void Dispose() => _file?.Dispose();
}
