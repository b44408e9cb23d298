using Microsoft.Extensions.Logging;
using RaftServer.Consensus;
using RaftServer.Storage;

namespace RaftServer.Tests.Storage;

public sealed class WriteAheadLogTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "raftps-tests", "wal-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly ListLogger _logger = new();

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private static Entry E(long index, long term, string data = "") =>
        new(index, term, data.Length == 0 ? EntryKind.NoOp : EntryKind.Command, System.Text.Encoding.UTF8.GetBytes(data));

    private WriteAheadLog Open(out PersistedState state, long segmentBytes = WriteAheadLog.DefaultSegmentBytes) =>
        WriteAheadLog.Open(_dir, _logger, out state, segmentBytes);

    private string OnlySegment() => Directory.GetFiles(_dir, "*.wal").Single();

    [Fact]
    public void A_new_log_is_empty_and_what_is_saved_is_recovered()
    {
        using (var wal = Open(out var empty))
        {
            Assert.Equal(HardState.Empty, empty.HardState);
            Assert.Empty(empty.Entries);
            wal.Save(new HardState(1, 0, 0), [E(1, 1), E(2, 1, "a")]);
            wal.Save(new HardState(1, 0, 2), [E(3, 1, "bb")]);
            wal.Save(null, [E(4, 1, "ccc")]);
        }
        using var again = Open(out var state);
        Assert.Equal(new HardState(1, 0, 2), state.HardState);
        Assert.Equal([1, 2, 3, 4], state.Entries.Select(e => e.Index));
        Assert.Equal("ccc", System.Text.Encoding.UTF8.GetString(state.Entries[3].Data));
        Assert.Equal(EntryKind.NoOp, state.Entries[0].Kind);
        Assert.Equal(4, again.LastIndex);
        Assert.Equal(0, state.SnapshotIndex);
        Assert.Empty(_logger.Warnings);
    }

    [Fact]
    public void A_commit_index_saved_without_fsync_is_read_back_after_the_process_ends()
    {
        using (var wal = Open(out _))
        {
            wal.Save(new HardState(1, 0, 0), [E(1, 1, "a"), E(2, 1, "b")]);
            wal.Save(new HardState(1, 0, 2), [], sync: false); // written, left to the OS
        }
        using var again = Open(out var state);
        Assert.Equal(new HardState(1, 0, 2), state.HardState);
        Assert.Equal(2, again.LastIndex);
        Assert.Empty(_logger.Warnings);
    }

    [Fact]
    public void Entries_at_an_index_the_log_has_replace_it_and_everything_after()
    {
        using (var wal = Open(out _))
        {
            wal.Save(new HardState(1, 0, 1), [E(1, 1, "a"), E(2, 1, "b"), E(3, 1, "c")]);
            wal.Save(new HardState(2, 1, 1), [E(2, 2, "B")]);
        }
        using var again = Open(out var state);
        Assert.Equal([(1L, 1L), (2L, 2L)], state.Entries.Select(e => (e.Index, e.Term)));
        Assert.Equal("B", System.Text.Encoding.UTF8.GetString(state.Entries[1].Data));
        Assert.Equal(new HardState(2, 1, 1), state.HardState);
    }

    [Fact]
    public void Segments_roll_over_and_each_starts_with_the_hard_state()
    {
        using (var wal = Open(out _, segmentBytes: 200))
        {
            wal.Save(new HardState(3, 2, 0), [E(1, 3, new string('x', 100))]);
            for (var i = 2; i <= 10; i++) wal.Save(null, [E(i, 3, new string('y', 100))]);
            Assert.True(wal.SizeBytes > 1000);
        }
        var files = Directory.GetFiles(_dir, "*.wal").Order().ToArray();
        Assert.True(files.Length >= 5, $"{files.Length} segments");
        Assert.EndsWith("0000000000000001.wal", files[0]);

        // Deleting the first segments' files leaves a log whose hard state survives (compaction-ready);
        // here we only check that every segment can be read back in order.
        using var again = Open(out var state, segmentBytes: 200);
        Assert.Equal(Enumerable.Range(1, 10).Select(i => (long)i), state.Entries.Select(e => e.Index));
        Assert.Equal(new HardState(3, 2, 0), state.HardState);
    }

    /// <summary>
    /// A crash during the last write, in the forms it takes when records are written over the
    /// zeros a segment was made with (pages reach the disk in any order) and when a segment ends
    /// at the file's end (written by an older version).
    /// </summary>
    [Theory]
    [InlineData("last-bytes-lost")]   // the write's last sector is still zeros
    [InlineData("header-cut")]        // the hard state record's header half written, zeros after it
    [InlineData("bad-crc-last")]      // the last record damaged, nothing after it
    [InlineData("first-part-lost")]   // the write's first sector is still zeros, a later one reached the disk
    [InlineData("file-cut")]          // a segment without zeros after its records, cut inside the last record
    public void A_torn_tail_is_truncated_with_a_warning(string damage)
    {
        using (var wal = Open(out _))
        {
            wal.Save(new HardState(1, 0, 2), [E(1, 1), E(2, 1, "two")]);
            wal.Save(new HardState(1, 0, 3), [E(3, 1, "three")]);
        }
        var path = OnlySegment();
        var bytes = File.ReadAllBytes(path);
        var end = WalTestFiles.RecordsEnd(bytes);
        var hardStateRecord = end - (12 + 21); // the last record: entry 3's hard state
        switch (damage)
        {
            case "last-bytes-lost": bytes.AsSpan(end - 8, 8).Clear(); break; // the commit index
            case "header-cut": bytes.AsSpan(hardStateRecord + 5, end - hardStateRecord - 5).Clear(); break;
            case "bad-crc-last": bytes[end - 3] ^= 0x55; break;
            case "first-part-lost": bytes.AsSpan(end + 700, 40).Fill(0x5A); break;
            case "file-cut": bytes = bytes[..(end - 5)]; break;
        }
        File.WriteAllBytes(path, bytes);

        using (var wal = Open(out var state))
        {
            Assert.Contains(_logger.Warnings, w => w.Contains(path) && w.Contains("truncating"));
            Assert.Equal(bytes.Length, new FileInfo(path).Length); // cut by zeros: the file keeps the space made ahead
            Assert.Equal([1L, 2L, 3L], state.Entries.Select(e => e.Index)); // entry 3 is intact; only its hard state record was damaged
            Assert.True(state.HardState.Commit >= 2);
            wal.Save(new HardState(1, 0, 4), [E(4, 1, "four")]);
        }
        using var third = Open(out var after);
        Assert.Equal([1L, 2L, 3L, 4L], after.Entries.Select(e => e.Index));
        Assert.Equal(4, after.HardState.Commit);
    }

    [Fact]
    public void A_cut_entry_at_the_tail_loses_only_that_entry()
    {
        using (var wal = Open(out _))
        {
            wal.Save(new HardState(1, 0, 1), [E(1, 1, "one")]);
            wal.Save(null, [E(2, 1, new string('z', 500))]);
        }
        var path = OnlySegment();
        var bytes = File.ReadAllBytes(path);
        bytes.AsSpan(WalTestFiles.RecordsEnd(bytes) - 100, 100).Clear(); // its last 100 bytes never reached the disk
        File.WriteAllBytes(path, bytes);
        using var wal2 = Open(out var state);
        Assert.Equal([1L], state.Entries.Select(e => e.Index));
        Assert.Equal(new HardState(1, 0, 1), state.HardState);
    }

    /// <summary>
    /// A write of several sectors whose middle sector never reached the disk, while a later one
    /// did (pages are written back in any order): the record with the all-zero sector is torn
    /// even though data follows it, as in etcd's WAL.
    /// </summary>
    [Fact]
    public void A_lost_sector_inside_the_last_write_is_a_torn_tail()
    {
        using (var wal = Open(out _))
        {
            wal.Save(new HardState(1, 0, 1), [E(1, 1, "one")]);
            wal.Save(new HardState(1, 0, 1), [E(2, 1, new string('w', 3000)), E(3, 1, "three")]);
        }
        var path = OnlySegment();
        var bytes = File.ReadAllBytes(path);
        bytes.AsSpan(1024, 512).Clear(); // a whole sector inside entry 2's data
        File.WriteAllBytes(path, bytes);

        using var wal2 = Open(out var state);
        Assert.Contains(_logger.Warnings, w => w.Contains(path) && w.Contains("truncating"));
        Assert.Equal([1L], state.Entries.Select(e => e.Index));
    }

    /// <summary>
    /// The first sector of the last write never reached the disk, its later sectors did: the
    /// zeros from where the records end run to the end of that sector, so it is a torn write.
    /// The same zeros covering only a record's header, with data in the rest of its sector, are
    /// not what a crash leaves: the node refuses to start.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Zeros_where_the_last_write_began_are_a_torn_tail_only_when_they_fill_the_rest_of_the_sector(bool wholeSector)
    {
        int lastWrite;
        using (var wal = Open(out _))
        {
            wal.Save(new HardState(1, 0, 1), [E(1, 1, "one")]);
            lastWrite = WalTestFiles.RecordsEnd(OnlySegment());
            wal.Save(new HardState(1, 0, 1), [E(2, 1, new string('w', 3000)), E(3, 1, "three")]);
        }
        var path = OnlySegment();
        var bytes = File.ReadAllBytes(path);
        var sectorEnd = (lastWrite / 512 + 1) * 512;
        bytes.AsSpan(lastWrite, wholeSector ? sectorEnd - lastWrite : 12).Clear();
        File.WriteAllBytes(path, bytes);

        if (wholeSector)
        {
            using var wal = Open(out var state);
            Assert.Contains(_logger.Warnings, w => w.Contains(path) && w.Contains($"offset {lastWrite}: the records end, but data follows") && w.Contains("truncating"));
            Assert.Equal([1L], state.Entries.Select(e => e.Index));
        }
        else
        {
            var e = Assert.Throws<StorageCorruptException>(() => Open(out _));
            Assert.Contains($"offset {lastWrite + 12}: data after the end of the segment's records (offset {lastWrite})", e.Message);
        }
    }

    /// <summary>
    /// A hard state record crossing a sector boundary with only its commit index's high bytes
    /// (zeros) after it, damaged, with fsynced records after it: those few zero bytes at the
    /// record's edge are not a lost sector (the rest of that sector holds data), so this is damage
    /// before the end of the log, never a torn tail that would drop the acknowledged entry 2.
    /// </summary>
    [Fact]
    public void A_few_zero_bytes_at_a_damaged_records_edge_do_not_make_it_torn()
    {
        const int hardStateStart = 512 - 27; // its last 6 bytes (the commit index's high bytes) in the next sector
        using (var wal = Open(out _))
        {
            // magic 8 + hard state 33 + entry 1 (30 + data) = hardStateStart
            wal.Save(new HardState(1, 0, 1), [E(1, 1, new string('d', hardStateStart - 8 - 33 - 30))]);
            wal.Save(null, [E(2, 1, "acknowledged")]);
        }
        var path = OnlySegment();
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(21, BitConverter.ToInt32(bytes, hardStateStart)); // the layout the test means
        Assert.True(bytes.AsSpan(512, 6).IndexOfAnyExcept((byte)0) < 0);
        bytes[hardStateStart + 12 + 2] ^= 0x01; // the term
        File.WriteAllBytes(path, bytes);

        var e = Assert.Throws<StorageCorruptException>(() => Open(out _));
        Assert.Contains($"offset {hardStateStart}: a CRC mismatch before the end of the log", e.Message);
    }

    [Fact]
    public void A_segment_written_before_segments_were_made_ahead_is_read_and_continued()
    {
        using (var wal = Open(out _))
            wal.Save(new HardState(1, 0, 2), [E(1, 1, "one"), E(2, 1, "two")]);
        var path = OnlySegment();
        var bytes = File.ReadAllBytes(path);
        var legacy = bytes[..WalTestFiles.RecordsEnd(bytes)];
        "RAFTWAL1"u8.CopyTo(legacy);
        File.WriteAllBytes(path, legacy);

        using (var wal = Open(out var state))
        {
            Assert.Equal([1L, 2L], state.Entries.Select(e => e.Index));
            wal.Save(new HardState(1, 0, 3), [E(3, 1, "three")]);
        }
        using var again = Open(out var after);
        Assert.Equal([1L, 2L, 3L], after.Entries.Select(e => e.Index));
        Assert.Empty(_logger.Warnings);
    }

    [Fact]
    public void A_segment_is_made_at_its_full_size_and_a_reopened_log_writes_after_its_records()
    {
        const long segmentBytes = 64 << 10;
        using (var wal = Open(out _, segmentBytes))
            wal.Save(new HardState(1, 0, 1), [E(1, 1, "one"), E(2, 1, "two")]);
        var path = OnlySegment();
        Assert.Equal(segmentBytes, new FileInfo(path).Length);
        var firstEnd = WalTestFiles.RecordsEnd(path);

        using (var wal = Open(out var state, segmentBytes))
        {
            Assert.Equal([1L, 2L], state.Entries.Select(e => e.Index));
            Assert.Equal(firstEnd, wal.SizeBytes); // the records, not the zeros after them
            wal.Save(new HardState(1, 0, 3), [E(3, 1, "three")]);
        }
        Assert.Equal(segmentBytes, new FileInfo(path).Length); // written over the zeros, not appended
        Assert.True(WalTestFiles.RecordsEnd(path) > firstEnd);
        using var again = Open(out var after, segmentBytes);
        Assert.Equal([1L, 2L, 3L], after.Entries.Select(e => e.Index));
        Assert.Equal(3, after.HardState.Commit);
        Assert.Empty(_logger.Warnings);
    }

    [Fact]
    public void Older_segments_end_at_their_zeros_and_data_after_their_records_refuses_to_start()
    {
        using (var wal = Open(out _, segmentBytes: 4096))
            for (var i = 1; i <= 12; i++) wal.Save(new HardState(1, 0, i - 1), [E(i, 1, new string('k', 1000))]);
        var files = Directory.GetFiles(_dir, "*.wal").Order().ToArray();
        Assert.True(files.Length >= 3, $"{files.Length} segments");
        Assert.All(files, f => Assert.Equal(4096, new FileInfo(f).Length));
        Assert.All(files, f => Assert.True(WalTestFiles.RecordsEnd(f) < 4096, "each segment has zeros after its records"));
        Assert.False(File.Exists(Path.Combine(_dir, "next-segment.tmp")), "the file made ahead is removed when the log closes");

        using (var wal = Open(out var state, segmentBytes: 4096))
            Assert.Equal(Enumerable.Range(1, 12).Select(i => (long)i), state.Entries.Select(e => e.Index));
        Assert.Empty(_logger.Warnings);

        var bytes = File.ReadAllBytes(files[0]);
        var end = WalTestFiles.RecordsEnd(bytes);
        bytes.AsSpan(end + 100, 20).Fill(0x33);
        File.WriteAllBytes(files[0], bytes);
        var e = Assert.Throws<StorageCorruptException>(() => Open(out _, segmentBytes: 4096));
        Assert.Contains(files[0], e.Message);
        Assert.Contains($"offset {end + 100}: data after the end of the segment's records", e.Message);
    }

    [Fact]
    public void A_batch_of_half_a_segment_or_more_starts_a_growing_file_and_the_one_made_ahead_waits_for_a_smaller_batch()
    {
        string[] files;
        using (var wal = Open(out _, segmentBytes: 4096))
        {
            wal.Save(new HardState(1, 0, 0), [E(1, 1, new string('a', 2000))]);
            wal.Save(null, [E(2, 1, new string('b', 1300)), E(3, 1, new string('c', 1300))]); // 2.6 KB, over half a segment: a file of its own
            wal.Save(null, [E(4, 1, new string('d', 1800))]); // does not fit after it and is under half: the file made ahead
            files = Directory.GetFiles(_dir, "*.wal").Order().ToArray();
            Assert.Equal(3, files.Length);
            Assert.Equal(4096, new FileInfo(files[0]).Length);
            Assert.Equal(WalTestFiles.RecordsEnd(files[1]), new FileInfo(files[1]).Length); // no zeros: grown by its records
            Assert.InRange(new FileInfo(files[1]).Length, 2600, 4095);
            Assert.Equal(4096, new FileInfo(files[2]).Length); // over the zeros made ahead
        }
        using var again = Open(out var state, segmentBytes: 4096);
        Assert.Equal([1L, 2L, 3L, 4L], state.Entries.Select(e => e.Index));
        Assert.Equal(new string('c', 1300), System.Text.Encoding.UTF8.GetString(state.Entries[2].Data));
        Assert.Empty(_logger.Warnings);
    }

    /// <summary>
    /// A crash while the next segment was being made (a short file), or after the log wrote its
    /// header and records into it but before renaming it (a file that looks like a segment): either
    /// way it never became part of the log, and it is deleted at start.
    /// </summary>
    [Theory]
    [InlineData("half-made")]
    [InlineData("not-yet-renamed")]
    public void A_file_left_by_a_crash_while_a_segment_was_made_is_replaced_by_a_full_one(string leftoverKind)
    {
        Directory.CreateDirectory(_dir);
        var leftover = Path.Combine(_dir, "next-segment.tmp");
        if (leftoverKind == "half-made")
            File.WriteAllBytes(leftover, [1, 2, 3]);
        else
        {
            using (var other = WriteAheadLog.Open(Path.Combine(_dir, "other"), _logger, out _, 8192))
                other.Save(new HardState(5, 1, 7), [E(1, 5, "never part of this log")]);
            File.Move(Path.Combine(_dir, "other", "0000000000000001.wal"), leftover);
            Directory.Delete(Path.Combine(_dir, "other"), true);
        }
        using (var wal = Open(out _, segmentBytes: 8192))
        {
            wal.Save(new HardState(1, 0, 0), [E(1, 1, "one")]);
            wal.Cut();
            wal.Save(null, [E(2, 1, "two")]);
        }
        var files = Directory.GetFiles(_dir, "*.wal").Order().ToArray();
        Assert.Equal(2, files.Length);
        Assert.All(files, f => Assert.Equal(8192, new FileInfo(f).Length));
        Assert.False(File.Exists(leftover));
        using var again = Open(out var state, segmentBytes: 8192);
        Assert.Equal([1L, 2L], state.Entries.Select(e => e.Index));
        Assert.Equal(new HardState(1, 0, 0), state.HardState); // nothing of the leftover's records
    }

    [Fact]
    public void Damage_before_the_tail_refuses_to_start_naming_the_file_and_offset()
    {
        using (var wal = Open(out _))
        {
            wal.Save(new HardState(1, 0, 0), [E(1, 1, "first-entry-data")]);
            wal.Save(null, [E(2, 1, "second")]);
            wal.Save(null, [E(3, 1, "third")]);
        }
        var path = OnlySegment();
        var bytes = File.ReadAllBytes(path);
        var firstEntryOffset = 8 + 12 + 21; // magic, the segment's hard state record
        bytes[firstEntryOffset + 12 + 20] ^= 0x01; // inside entry 1's data
        File.WriteAllBytes(path, bytes);

        var e = Assert.Throws<StorageCorruptException>(() => Open(out _));
        Assert.Contains(path, e.Message);
        Assert.Contains($"offset {firstEntryOffset}", e.Message);
        Assert.Contains("CRC", e.Message);
        Assert.Contains("refusing to start", e.Message);
    }

    [Fact]
    public void A_damaged_length_before_the_tail_refuses_to_start()
    {
        using (var wal = Open(out _))
        {
            wal.Save(new HardState(1, 0, 0), [E(1, 1, "a")]);
            wal.Save(null, [E(2, 1, "b")]);
        }
        var path = OnlySegment();
        var bytes = File.ReadAllBytes(path);
        bytes[8 + 12 + 21] ^= 0x10; // entry 1's length field
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<StorageCorruptException>(() => Open(out _));
        Assert.Contains($"offset {8 + 12 + 21}", e.Message);
    }

    [Fact]
    public void Damage_in_an_older_segment_refuses_to_start()
    {
        using (var wal = Open(out _, segmentBytes: 100))
        {
            for (var i = 1; i <= 4; i++) wal.Save(new HardState(1, 0, i - 1), [E(i, 1, new string('q', 80))]);
        }
        var first = Directory.GetFiles(_dir, "*.wal").Order().First();
        var bytes = File.ReadAllBytes(first);
        bytes[WalTestFiles.RecordsEnd(bytes) - 1] ^= 0xFF; // the last record of a segment that is not the last one
        File.WriteAllBytes(first, bytes);
        var e = Assert.Throws<StorageCorruptException>(() => Open(out _, segmentBytes: 100));
        Assert.Contains(first, e.Message);
    }

    [Fact]
    public void A_file_that_is_not_a_segment_refuses_to_start()
    {
        Directory.CreateDirectory(_dir);
        File.WriteAllText(Path.Combine(_dir, "0000000000000001.wal"), "this is not a log segment at all");
        var e = Assert.Throws<StorageCorruptException>(() => Open(out _));
        Assert.Contains("bad magic", e.Message);
    }

    [Fact]
    public void The_data_directory_is_locked_while_open()
    {
        using var first = DataDirectory.Open(_dir);
        var e = Assert.Throws<IOException>(() => DataDirectory.Open(_dir));
        Assert.Contains("in use", e.Message);
        Assert.EndsWith("wal", first.WalPath);
    }

    [Fact]
    public void A_data_directory_that_is_a_file_or_lies_under_one_is_refused_with_the_reason()
    {
        Directory.CreateDirectory(_dir);
        var file = Path.Combine(_dir, "not-a-directory");
        File.WriteAllText(file, "x");
        Assert.Equal($"data directory {file} is a file, not a directory", Assert.Throws<IOException>(() => DataDirectory.Open(file)).Message);
        Assert.StartsWith($"data directory {Path.Combine(file, "node-0")} cannot be created: ",
            Assert.Throws<IOException>(() => DataDirectory.Open(Path.Combine(file, "node-0"))).Message);
    }
}

/// <summary>Collects formatted log lines.</summary>
public sealed class ListLogger : ILogger
{
    private readonly List<string> _lines = new();
    public IReadOnlyList<string> Lines { get { lock (_lines) return _lines.ToList(); } }
    public IEnumerable<string> Warnings => Lines.Where(l => l.StartsWith("Warning:")).Select(l => l["Warning:".Length..]);

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(LogLevel logLevel) => true;
    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (_lines) _lines.Add($"{logLevel}:{formatter(state, exception)}");
    }
}
