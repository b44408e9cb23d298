using System.Globalization;
using Microsoft.Extensions.Logging;
using RaftServer.Consensus;

namespace RaftServer.Storage;

/// <summary>The log on disk is damaged somewhere other than its last record: the node must not start.</summary>
public sealed class StorageCorruptException(string message) : Exception(message);

/// <summary>
/// A write, fsync, rename or directory fsync of the node's durable state failed (ENOSPC, EIO, ...).
/// The node stops: after a failed fsync the kernel may have dropped the dirty pages and a later
/// fsync can succeed without them (PostgreSQL's "fsyncgate"), so nothing written since the last
/// good fsync can be trusted until the process starts again from what is on disk.
/// </summary>
public sealed class DiskFailureException(string message, Exception inner) : IOException(message, inner);

/// <summary>
/// The durable log: segment files (<c>0000000000000001.wal</c>, ...) of CRC-checked records
/// (<see cref="WalRecord"/>) holding log entries and hard state, so one fsync makes a whole
/// Ready durable (group commit). Each segment is made at its full size, zero-filled, ahead of time
/// (<see cref="WalSegmentPreparer"/>), and records are written over the zeros: the records end
/// at the first all-zero record header. An entry whose index the log already has replaces that entry and
/// every later one; recovery replays the records in order to rebuild the log. A segment is closed
/// once it passes <see cref="SegmentBytes"/> and a new one begins with
/// the current hard state, so compaction deletes whole old segments
/// (<see cref="DeleteSegmentsThrough"/>) and the log then starts at <see cref="FirstIndex"/>
/// rather than 1. A follower that installs a leader's snapshot discards the whole log
/// (<see cref="Reset"/>).
/// A failed write or fsync leaves the log failed: every later call throws
/// <see cref="DiskFailureException"/> (never retried: see that exception), and the node stops.
/// Owned by the node loop: not thread-safe.
/// </summary>
public sealed class WriteAheadLog : IDisposable
{
    /// <summary>
    /// Small enough that making the next one costs little (a few ms of writing here) and that the log
    /// kept on disk beyond the previous snapshot (up to one segment) replays fast; large enough
    /// that a busy node starts a segment about once a second, not every few writes.
    /// </summary>
    public const long DefaultSegmentBytes = 4L << 20;
    private const string Extension = ".wal";

    private readonly string _dir;
    private readonly ILogger _logger;
    private readonly List<WalSegment> _segments = [];
    private readonly WalSegmentPreparer _preparer;
    private readonly IDisk _disk;
    private FileStream _file = null!;
    /// <summary>The first write or fsync that failed: the log refuses everything after it.</summary>
    private Exception? _failure;
    private byte[] _buffer = new byte[256 << 10];
    private HardState _hardState = HardState.Empty;
    /// <summary>The index before the first entry on disk: the entries are <c>_baseIndex + 1 .. _lastIndex</c>.</summary>
    private long _baseIndex;
    private long _lastIndex;

    public long SegmentBytes { get; }
    public string Directory => _dir;
    public HardState HardState => _hardState;
    public long LastIndex => _lastIndex;
    /// <summary>The index of the first entry on disk; <see cref="LastIndex"/> + 1 when there is none.</summary>
    public long FirstIndex => _baseIndex + 1;
    /// <summary>Bytes of records in every segment together (not counting the zeros not yet written over).</summary>
    public long SizeBytes
    {
        get
        {
            long total = 0;
            foreach (var s in _segments) total += s.Size;
            return total;
        }
    }

    private WriteAheadLog(string dir, ILogger logger, long segmentBytes, IDisk disk)
    {
        _dir = dir;
        _logger = logger;
        _disk = disk;
        SegmentBytes = segmentBytes;
        _preparer = new WalSegmentPreparer(dir, segmentBytes, logger, disk);
    }

    /// <summary>
    /// Opens (or creates) the log in <paramref name="dir"/> and recovers what it holds: the hard
    /// state and the entries on disk (contiguous, but after compaction not starting at 1; combine
    /// them with the newest snapshot by <see cref="RecoveryPlan.Combine"/>).
    /// </summary>
    /// <exception cref="StorageCorruptException">a record before the tail is damaged, or the entries have a gap.</exception>
    /// <param name="disk">The file layer (<see cref="Disk.Real"/> unless a test injects faults).</param>
    /// <param name="compactedThrough">The index of the snapshot the node starts from (0 without one): a gap
    /// before a segment whose missing entries it all covers is a compaction a crash cut short, not damage
    /// (<see cref="WalReplay"/>); the older segments before it are deleted.</param>
    public static WriteAheadLog Open(string dir, ILogger logger, out PersistedState recovered, long segmentBytes = DefaultSegmentBytes, IDisk? disk = null,
        long compactedThrough = 0)
    {
        System.IO.Directory.CreateDirectory(dir);
        var wal = new WriteAheadLog(dir, logger, segmentBytes, disk ?? Disk.Real);
        try
        {
            recovered = wal.Recover(compactedThrough);
        }
        catch
        {
            wal.Dispose();
            throw;
        }
        wal._preparer.Begin();
        return wal;
    }

    private PersistedState Recover(long compactedThrough)
    {
        var files = new List<(long Seq, string Path)>();
        foreach (var path in System.IO.Directory.EnumerateFiles(_dir, "*" + Extension))
        {
            var name = Path.GetFileNameWithoutExtension(path);
            if (name.Length == 16 && long.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out var seq))
                files.Add((seq, path));
        }
        files.Sort((a, b) => a.Seq.CompareTo(b.Seq));

        var replay = new WalReplay(compactedThrough);
        var stale = 0; // segments before the last gap the replay stepped over
        for (var i = 0; i < files.Count; i++)
        {
            var segment = new WalSegment(files[i].Seq, files[i].Path);
            var gap = replay.SkippedGap;
            WalSegmentReader.Read(segment, isLast: i == files.Count - 1, replay, _logger);
            if (replay.SkippedGap != gap)
            {
                _logger.LogWarning("{Path}: entries {From} to {To} before it are missing, all of them in the snapshot at {Snapshot}: " +
                    "a compaction's deletion of old segments was cut short by a crash; deleting the {Count} older segment(s) left",
                    segment.Path, replay.SkippedGap!.Value.From, replay.SkippedGap.Value.To, compactedThrough, i);
                stale = i;
            }
            _segments.Add(segment);
        }
        if (stale > 0) DeleteOldest(stale);

        _hardState = replay.HardState;
        _baseIndex = replay.BaseIndex;
        _lastIndex = replay.LastIndex;
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
            _file = _disk.Open(last.Path, FileMode.Open, FileAccess.Write, FileShare.Read, bufferSize: 0);
            _file.Seek(last.Size, SeekOrigin.Begin); // the end of its records: what follows is zeros to write over
        }

        return new PersistedState { HardState = _hardState, Entries = replay.Entries };
    }

    /// <summary>
    /// Appends <paramref name="entries"/> (replacing any at the same or later indexes) and then
    /// <paramref name="hardState"/>, and fsyncs once. Returns once everything is on disk.
    /// With <paramref name="sync"/> false the records go to the operating system without an
    /// fsync (for a hard state that only moves the commit index: <see cref="Consensus.Ready.MustSync"/>);
    /// they survive a crash of this process, and the next synced Save makes them durable too.
    /// </summary>
    /// <exception cref="InvalidOperationException">the entries are not contiguous or do not continue the log
    /// (start after <see cref="LastIndex"/> + 1, or at or before a compacted index): a log with a gap could not be opened again.</exception>
    /// <exception cref="DiskFailureException">a write or fsync failed, now or before: nothing of this call may be taken as durable.</exception>
    public void Save(HardState? hardState, IReadOnlyList<Entry> entries, bool sync = true)
    {
        if (hardState is null && entries.Count == 0) return;
        ThrowIfFailed();
        CheckContinues(entries);
        try
        {
            Write(hardState, entries, sync);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Fail("saving log entries and hard state", e);
        }
    }

    private void Write(HardState? hardState, IReadOnlyList<Entry> entries, bool sync)
    {
        var size = hardState is null ? 0 : WalRecord.HardStateRecordSize;
        for (var i = 0; i < entries.Count; i++) size += WalRecord.EntrySize(entries[i]);

        var current = _segments[^1];
        if (current.Size + size > SegmentBytes && current.Size > WalRecord.Magic.Length + WalRecord.HardStateRecordSize)
        {
            // A batch of half a segment or more (large values) fills most of a segment by itself:
            // the zeros made ahead would be written once more to save little, so it goes to a new,
            // growing file and the one made ahead waits for a smaller batch.
            StartSegment(current.Seq + 1, growing: size >= SegmentBytes / 2);
            current = _segments[^1];
        }

        if (_buffer.Length < size) _buffer = new byte[Math.Max(size, _buffer.Length * 2)];
        var span = _buffer.AsSpan();
        var n = 0;
        for (var i = 0; i < entries.Count; i++)
        {
            var e = entries[i];
            n += WalRecord.WriteEntry(span[n..], e);
            current.NoteEntry(e.Index);
        }
        if (hardState is { } hs)
        {
            n += WalRecord.WriteHardState(span[n..], hs);
            _hardState = hs;
        }
        if (entries.Count > 0) _lastIndex = entries[^1].Index;

        _file.Write(_buffer, 0, n); // unbuffered FileStream: a write(2) of its own
        if (sync) _file.Flush(flushToDisk: true);
        current.Size += n;
        if (_buffer.Length > 4 << 20) _buffer = new byte[256 << 10]; // don't keep a huge buffer after one large batch
    }

    private void CheckContinues(IReadOnlyList<Entry> entries)
    {
        if (entries.Count == 0) return;
        var first = entries[0].Index;
        if (first <= _baseIndex || first > _lastIndex + 1)
            throw new InvalidOperationException($"entries starting at {first} do not continue the log ({FirstIndex}..{_lastIndex})");
        for (var i = 1; i < entries.Count; i++)
            if (entries[i].Index != first + i)
                throw new InvalidOperationException($"entries are not contiguous: {entries[i].Index} follows {entries[i - 1].Index}");
    }

    /// <summary>
    /// Closes the current segment and starts a new one, so that everything written so far can be
    /// deleted by <see cref="DeleteSegmentsThrough"/> once a snapshot covers it. Does nothing when
    /// the current segment holds no entry. The node does not call it: a segment cut short wastes
    /// the zeros made ahead for it, so segments end when full. Tests use it to lay out segments
    /// exactly.
    /// </summary>
    internal void Cut()
    {
        var current = _segments[^1];
        if (current.MaxIndex == 0) return;
        StartSegment(current.Seq + 1);
    }

    /// <summary>
    /// Deletes, oldest first, the segments none of whose entries is after <paramref name="index"/>
    /// (segments without entries among them), never the current one, and stops at the first
    /// segment it must keep: the log stays contiguous. Returns how many went.
    /// <see cref="FirstIndex"/> moves to the first entry left.
    /// </summary>
    public int DeleteSegmentsThrough(long index)
    {
        ThrowIfFailed();
        try
        {
            return DeleteSegments(index);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Fail("deleting compacted segments", e);
        }
    }

    private int DeleteSegments(long index)
    {
        var deleted = 0;
        while (deleted < _segments.Count - 1 && _segments[deleted].MaxIndex <= index) deleted++;
        if (deleted == 0) return 0;
        DeleteOldest(deleted);

        // Where recovery would now start: at the oldest segment's first entry (or LogBase record),
        // unless a later LogBase record moved the start further already.
        var start = _segments.FirstOrDefault(s => s.StartBase is not null)?.StartBase;
        if (start is { } b)
            _baseIndex = Math.Max(_baseIndex, b);
        else
        {
            // No entry is left on disk: record where the log continues, or a restart would
            // take the next entry for a gap.
            _baseIndex = _lastIndex;
            AppendLogBase(_lastIndex);
        }
        return deleted;
    }

    /// <summary>Deletes the <paramref name="count"/> oldest segments (compacted, cut off the log by a gap the snapshot
    /// covers, or discarded for a snapshot), then fsyncs the directory once.</summary>
    private void DeleteOldest(int count)
    {
        foreach (var segment in _segments.Take(count))
            DurableFiles.DeleteIfExists(segment.Path);
        _segments.RemoveRange(0, count);
        _disk.SyncDirectory(_dir);
    }

    /// <summary>
    /// A follower installed a leader's snapshot at <paramref name="snapshotIndex"/> (already
    /// durable), or the restart rule dropped the log (<see cref="RecoveryPlan"/>): discards the
    /// whole log. A new segment begins with the hard state and a LogBase
    /// record, then every older segment is deleted. <see cref="LastIndex"/> becomes
    /// <paramref name="snapshotIndex"/> and the next entries saved start after it. A crash at any
    /// point leaves a log that opens: before the new segment is complete, the old log (which the
    /// restart rule drops in favour of the snapshot); after, the LogBase record discards whatever
    /// old segments a crash left.
    /// </summary>
    public void Reset(long snapshotIndex)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(snapshotIndex);
        ThrowIfFailed();
        try
        {
            Discard(snapshotIndex);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Fail("discarding the log for a snapshot", e);
        }
    }

    private void Discard(long snapshotIndex)
    {
        _baseIndex = _lastIndex = snapshotIndex;
        StartSegment(_segments[^1].Seq + 1, logBase: true);
        DeleteOldest(_segments.Count - 1);
    }

    /// <summary>
    /// Creates segment <paramref name="seq"/> and makes it current: magic, the current hard state,
    /// and a LogBase record when asked to, or when the log holds no entry after a compacted
    /// index (to say where it continues: the segments that said so before may be deleted).
    /// The file is the one made ahead of time, renamed only once its header is on disk, so every
    /// segment a restart finds has one; with <paramref name="growing"/> a new empty file instead.
    /// </summary>
    private void StartSegment(long seq, bool logBase = false, bool growing = false)
    {
        var path = Path.Combine(_dir, seq.ToString("D16", CultureInfo.InvariantCulture) + Extension);
        var prepared = growing ? null : _preparer.Take();
        var file = prepared is null
            ? _disk.Open(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read, bufferSize: 0)
            : _disk.Open(prepared, FileMode.Open, FileAccess.Write, FileShare.Read | FileShare.Delete, bufferSize: 0); // Delete: Windows renames open files only with it
        if (_file is not null)
        {
            // Records saved without fsync (a commit index) may be the old segment's last: make
            // them durable before a newer segment exists, or a crash could tear a segment that is
            // no longer the last one, and that refuses to start.
            _file.Flush(flushToDisk: true);
            _file.Dispose();
        }
        _file = file;
        var segment = new WalSegment(seq, path);
        Span<byte> head = stackalloc byte[WalRecord.Magic.Length + WalRecord.HardStateRecordSize + WalRecord.LogBaseRecordSize];
        WalRecord.Magic.CopyTo(head);
        var n = WalRecord.Magic.Length + WalRecord.WriteHardState(head[WalRecord.Magic.Length..], _hardState);
        if (logBase || (_lastIndex == _baseIndex && _lastIndex > 0))
        {
            n += WalRecord.WriteLogBase(head[n..], _lastIndex);
            segment.NoteLogBase(_lastIndex);
        }
        _file.Write(head[..n]);
        _file.Flush(flushToDisk: true);
        if (prepared is not null) _disk.Rename(prepared, path, overwrite: false);
        else _disk.SyncDirectory(_dir);
        segment.Size = n;
        _segments.Add(segment);
        _preparer.Begin();
    }

    private void AppendLogBase(long index)
    {
        Span<byte> record = stackalloc byte[WalRecord.LogBaseRecordSize];
        var n = WalRecord.WriteLogBase(record, index);
        _file.Write(record[..n]);
        _file.Flush(flushToDisk: true);
        var current = _segments[^1];
        current.Size += n;
        current.NoteLogBase(index);
    }

    private void ThrowIfFailed()
    {
        if (_failure is not null)
            throw new DiskFailureException($"the write-ahead log in {_dir} failed earlier ({_failure.Message}) and takes no more writes: restart the node", _failure);
    }

    private DiskFailureException Fail(string what, Exception e)
    {
        _failure = e;
        return new DiskFailureException($"{what} in {_dir} failed: {e.Message}", e);
    }

    public void Dispose()
    {
        try
        {
            _file?.Dispose();
        }
        catch (Exception e) when (_failure is not null && e is IOException)
        {
            // Closing a file whose write failed may fail again: the failure is reported already.
        }
        _preparer.Dispose();
    }
}
