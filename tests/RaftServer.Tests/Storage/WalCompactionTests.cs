using RaftServer.Consensus;
using RaftServer.Storage;

namespace RaftServer.Tests.Storage;

public sealed class WalCompactionTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "raftps-tests", "walc-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly ListLogger _logger = new();

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private static Entry E(long index, long term = 1) => new(index, term, EntryKind.Command, System.Text.Encoding.UTF8.GetBytes($"entry {index}"));
    private static Entry[] Range(long from, long to, long term = 1) => Enumerable.Range((int)from, (int)(to - from + 1)).Select(i => E(i, term)).ToArray();

    private WriteAheadLog Open(out PersistedState state) => WriteAheadLog.Open(_dir, _logger, out state);

    private string[] Segments() => Directory.GetFiles(_dir, "*.wal").Order().ToArray();

    private void AssertSizeMatchesDisk(WriteAheadLog wal) =>
        Assert.Equal(Segments().Sum(f => (long)WalTestFiles.RecordsEnd(f)), wal.SizeBytes);

    private static IEnumerable<(long, long)> IndexTerms(PersistedState s) => s.Entries.Select(e => (e.Index, e.Term));

    [Fact]
    public void Cut_segments_covered_by_a_snapshot_are_deleted_and_the_log_reopens_from_the_first_left()
    {
        using (var wal = Open(out _))
        {
            Assert.Equal(1, wal.FirstIndex);
            wal.Save(new HardState(1, 0, 10), Range(1, 10));
            wal.Cut();
            wal.Save(new HardState(1, 0, 15), Range(11, 15));
            wal.Cut();
            wal.Save(new HardState(1, 0, 18), Range(16, 20));
            Assert.Equal(3, Segments().Length);
            AssertSizeMatchesDisk(wal);

            Assert.Equal(1, wal.DeleteSegmentsThrough(12)); // the second segment has 13..15: kept
            Assert.Equal(11, wal.FirstIndex);
            Assert.Equal(20, wal.LastIndex);
            Assert.Equal(2, Segments().Length);
            AssertSizeMatchesDisk(wal);
            Assert.Equal(0, wal.DeleteSegmentsThrough(12));
        }

        using (var wal = Open(out var state))
        {
            Assert.Equal(Range(11, 20).Select(e => (e.Index, e.Term)), IndexTerms(state));
            Assert.Equal(new HardState(1, 0, 18), state.HardState);
            Assert.Equal(11, wal.FirstIndex);
            Assert.Equal(20, wal.LastIndex);
            Assert.Empty(_logger.Warnings);

            Assert.Equal(1, wal.DeleteSegmentsThrough(1000)); // never the current segment
            Assert.Equal(16, wal.FirstIndex);
            AssertSizeMatchesDisk(wal);
            wal.Save(null, [E(21)]);
        }
        using var again = Open(out var after);
        Assert.Equal(Range(16, 21).Select(e => (e.Index, e.Term)), IndexTerms(after));
    }

    [Fact]
    public void When_every_entry_is_deleted_the_log_remembers_where_it_continues()
    {
        using (var wal = Open(out _))
        {
            wal.Save(new HardState(2, 1, 5), Range(1, 5));
            wal.Cut();
            Assert.Equal(1, wal.DeleteSegmentsThrough(5));
            Assert.Equal(6, wal.FirstIndex);
            Assert.Equal(5, wal.LastIndex);
            AssertSizeMatchesDisk(wal);
        }
        using (var wal = Open(out var state))
        {
            Assert.Empty(state.Entries);
            Assert.Equal(5, wal.LastIndex);
            Assert.Equal(6, wal.FirstIndex);
            Assert.Equal(new HardState(2, 1, 5), state.HardState); // the commit index is not clamped away
            Assert.Empty(_logger.Warnings);
            Assert.Throws<InvalidOperationException>(() => wal.Save(null, [E(7)])); // a gap would not reopen
            wal.Save(null, Range(6, 7));
        }
        using var again = Open(out var after);
        Assert.Equal([6L, 7L], after.Entries.Select(e => e.Index));
    }

    [Fact]
    public void Cut_without_entries_in_the_current_segment_does_nothing()
    {
        using var wal = Open(out _);
        wal.Save(new HardState(1, 0, 0), []);
        wal.Cut();
        Assert.Single(Segments());
        wal.Save(null, [E(1)]);
        wal.Cut();
        wal.Cut();
        Assert.Equal(2, Segments().Length);
        Assert.Equal(0, wal.DeleteSegmentsThrough(0));
    }

    [Fact]
    public void A_segment_with_an_entry_past_the_index_stops_deletion_even_if_that_entry_was_overwritten()
    {
        using (var wal = Open(out _))
        {
            wal.Save(new HardState(1, 0, 7), Range(1, 10));
            wal.Cut();
            wal.Save(new HardState(2, 0, 7), Range(8, 9, term: 2)); // a new leader replaced 8..10 with 8..9
            wal.Cut();
            wal.Save(null, Range(10, 12, term: 2));
            Assert.Equal(0, wal.DeleteSegmentsThrough(9)); // the first segment still holds the old entry 10
            Assert.Equal(2, wal.DeleteSegmentsThrough(10));
            Assert.Equal(10, wal.FirstIndex);
        }
        using var again = Open(out var state);
        Assert.Equal([(10L, 2L), (11L, 2L), (12L, 2L)], IndexTerms(state));
    }

    [Fact]
    public void Overwrites_across_segments_recover_before_and_after_compaction()
    {
        using (var wal = Open(out _))
        {
            wal.Save(new HardState(1, 0, 3), Range(1, 6));
            wal.Cut();
            wal.Save(new HardState(2, 0, 3), Range(4, 5, term: 2));
        }
        using (var wal = Open(out var state))
        {
            Assert.Equal([(1L, 1L), (2L, 1L), (3L, 1L), (4L, 2L), (5L, 2L)], IndexTerms(state));
            Assert.Equal(5, wal.LastIndex);
            Assert.Equal(1, wal.DeleteSegmentsThrough(6));
            Assert.Equal(4, wal.FirstIndex);
        }
        using var again = Open(out var after);
        Assert.Equal([(4L, 2L), (5L, 2L)], IndexTerms(after));
    }

    [Fact]
    public void Saves_that_would_leave_a_gap_or_rewrite_compacted_entries_are_refused()
    {
        using var wal = Open(out _);
        Assert.Throws<InvalidOperationException>(() => wal.Save(null, [E(2)]));
        wal.Save(null, Range(1, 4));
        Assert.Throws<InvalidOperationException>(() => wal.Save(null, [E(6)]));
        Assert.Throws<InvalidOperationException>(() => wal.Save(null, [E(5), E(7)]));
        wal.Cut();
        wal.Save(null, Range(5, 6));
        wal.DeleteSegmentsThrough(4);
        Assert.Equal(5, wal.FirstIndex);
        Assert.Throws<InvalidOperationException>(() => wal.Save(null, [E(4, 2)]));
        wal.Save(null, [E(5, 2)]); // replacing the first entry on disk is fine
        Assert.Equal(5, wal.LastIndex);
    }

    [Fact]
    public void Reset_discards_the_log_and_saves_continue_after_the_snapshot()
    {
        using (var wal = WriteAheadLog.Open(_dir, _logger, out _, segmentBytes: 200))
        {
            for (var i = 1; i <= 10; i++) wal.Save(new HardState(1, 0, i - 1), [E(i)]);
            Assert.True(Segments().Length > 2);

            wal.Reset(50);
            Assert.Single(Segments());
            Assert.Equal(50, wal.LastIndex);
            Assert.Equal(51, wal.FirstIndex);
            AssertSizeMatchesDisk(wal);
            Assert.Throws<InvalidOperationException>(() => wal.Save(null, [E(50, 3)]));
            Assert.Throws<InvalidOperationException>(() => wal.Save(null, [E(52, 3)]));
            wal.Save(new HardState(3, 2, 50), Range(51, 53, term: 3));
        }
        using (var wal = Open(out var state))
        {
            Assert.Equal([(51L, 3L), (52L, 3L), (53L, 3L)], IndexTerms(state));
            Assert.Equal(new HardState(3, 2, 50), state.HardState);
            Assert.Equal(51, wal.FirstIndex);
            Assert.Equal(53, wal.LastIndex);
        }
    }

    [Fact]
    public void Reset_below_the_last_index_discards_the_conflicting_entries_too()
    {
        using (var wal = Open(out _))
        {
            wal.Save(new HardState(1, 0, 3), Range(1, 10));
            wal.Reset(5);
            Assert.Equal(5, wal.LastIndex);
        }
        using (var wal = Open(out var state))
        {
            Assert.Empty(state.Entries);
            Assert.Equal(5, wal.LastIndex);
            Assert.Equal(new HardState(1, 0, 3), state.HardState);
            wal.Save(null, [E(6, 2)]);
        }
        using var again = Open(out var after);
        Assert.Equal([(6L, 2L)], IndexTerms(after));
    }

    /// <summary>
    /// A follower saved a leader's snapshot at 50 (term 4) and then crashed inside Reset, after the
    /// new segment was durable but before the old segments were deleted (simulated by putting the
    /// old segment files back). The LogBase record discards them; the restart rule then starts
    /// from the snapshot.
    /// </summary>
    [Fact]
    public void A_crash_between_resets_new_segment_and_deleting_the_old_ones_recovers()
    {
        var aside = Path.Combine(_dir, "aside");
        using (var wal = WriteAheadLog.Open(_dir, _logger, out _, segmentBytes: 200))
        {
            for (var i = 1; i <= 8; i++) wal.Save(new HardState(2, 1, i), [E(i, 2)]);
            Directory.CreateDirectory(aside);
            foreach (var f in Segments()) File.Copy(f, Path.Combine(aside, Path.GetFileName(f)));
            wal.Reset(50);
        }
        foreach (var f in Directory.GetFiles(aside)) File.Copy(f, Path.Combine(_dir, Path.GetFileName(f)));
        Directory.Delete(aside, true);
        Assert.True(Segments().Length > 2);

        var snapshot = new SnapshotMetadata(50, 4, [1, 2, 3]);
        using (var wal = Open(out var state))
        {
            Assert.Empty(state.Entries);
            Assert.Equal(50, wal.LastIndex);
            var plan = RecoveryPlan.Combine(state.HardState, state.Entries, snapshot, out var dropped, out _);
            Assert.False(dropped);
            Assert.Equal((50L, 4L, 50L), (plan.SnapshotIndex, plan.SnapshotTerm, plan.Applied));
            Assert.Empty(plan.Entries);
            Assert.Equal(50, plan.HardState.Commit);
            Assert.Equal(4, plan.HardState.Term); // raised: the leader's term was not saved before the crash
            wal.Save(plan.HardState, Range(51, 52, term: 4));
        }
        using var again = Open(out var after);
        Assert.Equal([(51L, 4L), (52L, 4L)], IndexTerms(after));
        var replan = RecoveryPlan.Combine(after.HardState, after.Entries, snapshot);
        Assert.Equal([51L, 52L], replan.Entries.Select(e => e.Index));
    }

    /// <summary>The same crash one step earlier: the new segment was cut inside its LogBase
    /// record and the old segment not yet deleted. The old log comes back whole; the restart rule
    /// drops it for the snapshot and <see cref="RecoveryPlan.Apply"/> discards it on disk.</summary>
    [Fact]
    public void A_crash_while_reset_writes_its_new_segment_leaves_the_old_log_which_the_restart_rule_drops()
    {
        using (var wal = Open(out _))
            wal.Save(new HardState(2, 1, 8), Range(1, 8, term: 2));
        var old = Segments().Single();
        var oldBytes = File.ReadAllBytes(old);
        using (var wal = Open(out _))
            wal.Reset(50);
        var fresh = Segments().Single();
        File.WriteAllBytes(old, oldBytes);
        var freshBytes = File.ReadAllBytes(fresh);
        freshBytes.AsSpan(WalTestFiles.RecordsEnd(freshBytes) - 8, 8).Clear(); // the LogBase record's index never reached the disk
        File.WriteAllBytes(fresh, freshBytes);

        var snapshot = new SnapshotMetadata(50, 4, [1, 2, 3]);
        using (var wal = Open(out var state))
        {
            Assert.Contains(_logger.Warnings, w => w.Contains(fresh) && w.Contains("truncating"));
            Assert.Equal(8, wal.LastIndex);
            Assert.Equal(8, state.Entries.Count);

            var plan = RecoveryPlan.Apply(wal, state, snapshot, _logger);
            Assert.Contains(_logger.Warnings, w => w.Contains("dropped the log (1..8): it ends before the snapshot at 50"));
            Assert.Empty(plan.Entries);
            Assert.Equal((50L, 50L), (plan.SnapshotIndex, plan.HardState.Commit));
            Assert.Equal(50, wal.LastIndex);
            wal.Save(plan.HardState, Range(51, 51, term: 4));
        }
        using var again = Open(out var after);
        Assert.Equal([(51L, 4L)], IndexTerms(after));
    }

    [Fact]
    public void A_missing_segment_in_the_middle_is_still_refused()
    {
        using (var wal = Open(out _))
        {
            wal.Save(new HardState(1, 0, 0), Range(1, 5));
            wal.Cut();
            wal.Save(null, Range(6, 10));
            wal.Cut();
            wal.Save(null, Range(11, 15));
        }
        File.Delete(Segments()[1]);
        var e = Assert.Throws<StorageCorruptException>(() => Open(out _));
        Assert.Contains("entry 11 does not follow the log's last index 5", e.Message);
        Assert.Contains("refusing to start", e.Message);
    }

    /// <summary>Four segments of five entries each (1..5, 6..10, 11..15, 16..20), the last current.</summary>
    private void WriteFourSegments()
    {
        using var wal = Open(out _);
        wal.Save(new HardState(2, 0, 18), Range(1, 5));
        for (var first = 6; first <= 16; first += 5)
        {
            wal.Cut();
            wal.Save(null, Range(first, first + 4));
        }
        Assert.Equal(4, Segments().Length);
    }

    [Fact]
    public void A_compaction_cut_short_by_a_crash_recovers_when_the_snapshot_covers_the_gap()
    {
        // DeleteSegmentsThrough(15) unlinks three segments, then fsyncs the directory once: a crash
        // in between may keep the oldest while the unlink of the second reached the disk.
        WriteFourSegments();
        var oldest = Segments()[0];
        File.Delete(Segments()[1]);

        using (var wal = WriteAheadLog.Open(_dir, _logger, out var state, compactedThrough: 10))
        {
            Assert.Equal(Range(11, 20).Select(e => (e.Index, e.Term)), IndexTerms(state));
            Assert.Equal(new HardState(2, 0, 18), state.HardState);
            Assert.Equal(11, wal.FirstIndex);
            Assert.Equal(20, wal.LastIndex);
            Assert.False(File.Exists(oldest)); // cut off the log: deleted
            Assert.Equal(2, Segments().Length);
            AssertSizeMatchesDisk(wal);
            var warning = Assert.Single(_logger.Warnings);
            Assert.Contains("entries 6 to 10 before it are missing, all of them in the snapshot at 10", warning);
            wal.Save(null, [E(21)]);
        }
        using var again = Open(out var after); // no gap left: it opens without the snapshot's help
        Assert.Equal(Range(11, 21).Select(e => (e.Index, e.Term)), IndexTerms(after));
    }

    [Fact]
    public void Every_gap_before_a_segment_is_stepped_over_when_the_snapshot_covers_it()
    {
        WriteFourSegments();
        var files = Segments();
        File.Delete(files[0]);
        File.Delete(files[2]); // left: 6..10 and 16..20

        using var wal = WriteAheadLog.Open(_dir, _logger, out var state, compactedThrough: 15);
        Assert.Equal(Range(16, 20).Select(e => (e.Index, e.Term)), IndexTerms(state));
        Assert.Equal(16, wal.FirstIndex);
        Assert.Equal([files[3]], Segments());
    }

    [Fact]
    public void A_gap_the_snapshot_does_not_cover_is_refused_and_nothing_is_deleted()
    {
        WriteFourSegments();
        File.Delete(Segments()[1]); // 6..10 missing
        var left = Segments();

        var e = Assert.Throws<StorageCorruptException>(() => WriteAheadLog.Open(_dir, _logger, out _, compactedThrough: 9));
        Assert.Contains("entry 11 does not follow the log's last index 5 (the missing entries are not all in the snapshot, which ends at 9)", e.Message);
        Assert.Contains("refusing to start", e.Message);
        Assert.Equal(left, Segments());
    }

    [Fact]
    public void A_damaged_log_base_record_before_the_tail_is_refused()
    {
        using (var wal = Open(out _))
        {
            wal.Save(new HardState(1, 0, 0), Range(1, 3));
            wal.Reset(9);
            wal.Save(null, Range(10, 12));
        }
        var path = Segments().Single();
        var bytes = File.ReadAllBytes(path);
        bytes[8 + 12 + 21 + 12 + 2] ^= 0x01; // inside the LogBase record after the segment's hard state
        File.WriteAllBytes(path, bytes);
        Assert.Contains("CRC", Assert.Throws<StorageCorruptException>(() => Open(out _)).Message);
    }
}
