using RaftServer.Consensus;
using RaftServer.Storage;

namespace RaftServer.Tests.Storage;

public sealed class RecoveryPlanTests
{
    private static Entry[] Log(long from, long to, long term = 2) =>
        Enumerable.Range((int)from, (int)(to - from + 1)).Select(i => new Entry(i, term, EntryKind.NoOp, [])).ToArray();

    private static SnapshotMetadata Snap(long index, long term = 2) => new(index, term, [1, 2, 3]);

    private static PersistedState Combine(HardState hs, Entry[] log, SnapshotMetadata? snap, out bool dropped, out string? warning) =>
        RecoveryPlan.Combine(hs, log, snap, out dropped, out warning);

    [Fact]
    public void Without_a_snapshot_the_log_is_used_as_it_is()
    {
        var plan = Combine(new HardState(3, 1, 4), Log(1, 6), null, out var dropped, out var warning);
        Assert.Equal(Enumerable.Range(1, 6).Select(i => (long)i), plan.Entries.Select(e => e.Index));
        Assert.Equal((0L, 0L, 0L), (plan.SnapshotIndex, plan.SnapshotTerm, plan.Applied));
        Assert.Equal(new HardState(3, 1, 4), plan.HardState);
        Assert.False(dropped);
        Assert.Null(warning);

        var empty = Combine(HardState.Empty, [], null, out dropped, out warning);
        Assert.Empty(empty.Entries);
        Assert.Equal(HardState.Empty, empty.HardState);
        Assert.False(dropped);
        Assert.Null(warning);
    }

    [Fact]
    public void Entries_at_or_below_the_snapshot_go_and_the_rest_stay_when_the_terms_agree()
    {
        var plan = Combine(new HardState(3, 1, 8), Log(1, 10), Snap(5), out var dropped, out var warning);
        Assert.Equal([6L, 7L, 8L, 9L, 10L], plan.Entries.Select(e => e.Index));
        Assert.Equal((5L, 2L, 5L), (plan.SnapshotIndex, plan.SnapshotTerm, plan.Applied));
        Assert.Equal(8, plan.HardState.Commit);
        Assert.False(dropped);
        Assert.Null(warning);
    }

    [Fact]
    public void A_compacted_log_that_starts_right_after_the_snapshot_is_kept()
    {
        var plan = Combine(new HardState(3, 1, 12), Log(11, 15), Snap(10), out var dropped, out _);
        Assert.Equal([11L, 12L, 13L, 14L, 15L], plan.Entries.Select(e => e.Index));
        Assert.False(dropped);
    }

    [Fact]
    public void A_log_ending_exactly_at_the_snapshot_leaves_no_entries_and_is_not_dropped()
    {
        var plan = Combine(new HardState(3, 1, 10), Log(4, 10), Snap(10), out var dropped, out var warning);
        Assert.Empty(plan.Entries);
        Assert.Equal(10, plan.HardState.Commit);
        Assert.False(dropped);
        Assert.Null(warning);
    }

    [Fact]
    public void A_log_whose_entry_at_the_snapshot_has_another_term_is_dropped()
    {
        var log = Log(1, 10, term: 1);
        var plan = Combine(new HardState(3, 1, 4), log, Snap(7, term: 3), out var dropped, out var warning);
        Assert.Empty(plan.Entries);
        Assert.True(dropped);
        Assert.Contains("its entry 7 has term 1, the snapshot's is 3", warning);
        Assert.Equal(7, plan.HardState.Commit); // at least the snapshot
    }

    [Fact]
    public void A_log_ending_before_the_snapshot_is_dropped()
    {
        var plan = Combine(new HardState(5, 2, 3), Log(1, 4), Snap(9), out var dropped, out var warning);
        Assert.Empty(plan.Entries);
        Assert.True(dropped);
        Assert.Contains("ends before the snapshot at 9", warning);
        Assert.Equal(new HardState(5, 2, 9), plan.HardState);
        Assert.Equal(9, plan.Applied);
    }

    [Fact]
    public void A_gap_between_the_snapshot_and_the_log_drops_the_log()
    {
        var plan = Combine(new HardState(5, 2, 30), Log(21, 30), Snap(10), out var dropped, out var warning);
        Assert.Empty(plan.Entries);
        Assert.True(dropped);
        Assert.Contains("starts after a gap from the snapshot at 10", warning);
        Assert.Equal(10, plan.HardState.Commit);

        // Without any snapshot a log that does not start at 1 has the same gap.
        var none = Combine(new HardState(5, 2, 30), Log(21, 30), null, out dropped, out warning);
        Assert.Empty(none.Entries);
        Assert.True(dropped);
        Assert.Contains("snapshot at 0", warning);
        Assert.Equal(0, none.HardState.Commit);
    }

    [Fact]
    public void The_commit_index_stays_between_the_snapshot_and_the_last_entry_kept()
    {
        Assert.Equal(5, Combine(new HardState(3, 1, 2), Log(1, 8), Snap(5), out _, out _).HardState.Commit);
        Assert.Equal(8, Combine(new HardState(3, 1, 20), Log(1, 8), Snap(5), out _, out _).HardState.Commit);
        Assert.Equal(6, Combine(new HardState(3, 1, 6), Log(1, 8), Snap(5), out _, out _).HardState.Commit);
    }

    [Fact]
    public void A_term_below_the_snapshots_is_raised_with_no_vote()
    {
        var plan = Combine(new HardState(2, 3, 4), Log(1, 4, term: 2), Snap(9, term: 5), out var dropped, out var warning);
        Assert.Equal(new HardState(5, HardState.NoVote, 9), plan.HardState);
        Assert.True(dropped);
        Assert.Contains("raised the term from 2 to the snapshot's 5", warning);

        var kept = Combine(new HardState(2, 3, 4), Log(10, 12, term: 5), Snap(9, term: 5), out dropped, out warning);
        Assert.Equal(new HardState(5, HardState.NoVote, 9), kept.HardState);
        Assert.False(dropped); // only the term changed: the log stays
        Assert.Equal(3, kept.Entries.Count);
        Assert.Equal("raised the term from 2 to the snapshot's 5", warning);

        var same = Combine(new HardState(5, 3, 9), [], Snap(9, term: 5), out _, out warning);
        Assert.Equal(new HardState(5, 3, 9), same.HardState);
        Assert.Null(warning);
    }

    [Fact]
    public void Entries_that_are_not_contiguous_are_a_caller_error()
    {
        Entry[] log = [.. Log(1, 3), .. Log(5, 6)];
        Assert.Throws<ArgumentException>(() => RecoveryPlan.Combine(HardState.Empty, log, null));
    }

    [Fact]
    public void The_result_is_accepted_by_the_core()
    {
        foreach (var (log, snap) in new (Entry[], SnapshotMetadata?)[] { (Log(1, 10), Snap(5)), (Log(1, 3), Snap(9)), (Log(21, 30), Snap(10)), (Log(11, 15), Snap(10)), (Log(1, 4), null) })
        {
            var plan = RecoveryPlan.Combine(new HardState(7, 1, 100), log, snap);
            var node = new RaftNode(new RaftOptions { Id = 1, Members = [1, 2, 3], Random = new Random(1) }, plan);
            Assert.Equal(plan.SnapshotIndex, node.SnapshotIndex);
            Assert.Equal(plan.SnapshotIndex + plan.Entries.Count, node.LastIndex);
            Assert.Equal(plan.HardState.Commit, node.CommitIndex);
        }
    }
}
