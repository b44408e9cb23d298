namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>The checker itself, on histories known to be (or not to be) linearizable.</summary>
public class LinearizabilityCheckerTests
{
    private const long Pending = Operation.Pending;

    private static Operation W(int client, int value, long call, long ret, int key = 1) => new(client, true, key, value, call, ret);
    private static Operation R(int client, int value, long call, long ret, int key = 1) => new(client, false, key, value, call, ret);

    private static bool Check(params Operation[] history) => LinearizabilityChecker.IsLinearizable(history, out _);

    [Fact]
    public void Empty_history_is_linearizable() => Assert.True(Check());

    [Fact]
    public void Sequential_write_then_read_is_linearizable() =>
        Assert.True(Check(W(0, 1, 0, 10), R(1, 1, 20, 30)));

    [Fact]
    public void Reading_the_initial_value_before_any_write_is_linearizable() =>
        Assert.True(Check(R(1, 0, 0, 5), W(0, 1, 10, 20), R(1, 1, 25, 30)));

    [Fact]
    public void Stale_read_after_a_completed_write_is_not_linearizable() =>
        Assert.False(Check(W(0, 1, 0, 10), W(0, 2, 20, 30), R(1, 1, 40, 50)));

    [Fact]
    public void Read_of_a_value_never_written_is_not_linearizable() =>
        Assert.False(Check(W(0, 1, 0, 10), R(1, 7, 20, 30)));

    [Fact]
    public void Concurrent_read_may_see_either_value() =>
        Assert.True(Check(W(0, 1, 0, 10), W(0, 2, 20, 40), R(1, 1, 25, 30), R(2, 2, 26, 35)));

    [Fact]
    public void Reads_that_go_back_in_time_are_not_linearizable() =>
        // Both reads overlap the write, but the second starts after the first ended: once a reader
        // saw the new value, a later reader must not see the old one.
        Assert.False(Check(W(0, 1, 0, 10), W(0, 2, 20, 100), R(1, 2, 30, 40), R(2, 1, 50, 60)));

    [Fact]
    public void A_write_with_unknown_outcome_may_take_effect_late_or_never()
    {
        Assert.True(Check(W(0, 1, 0, 10), W(0, 2, 20, Pending), R(1, 1, 30, 40), R(1, 2, 50, 60)));
        Assert.True(Check(W(0, 1, 0, 10), W(0, 2, 20, Pending), R(1, 1, 30, 40), R(1, 1, 50, 60)));
        // ...but once seen, it cannot be unseen.
        Assert.False(Check(W(0, 1, 0, 10), W(0, 2, 20, Pending), R(1, 2, 30, 40), R(1, 1, 50, 60)));
    }

    [Fact]
    public void Keys_are_independent() =>
        Assert.True(Check(W(0, 1, 0, 10, key: 1), W(0, 5, 0, 10, key: 2), R(1, 5, 20, 30, key: 2), R(1, 1, 20, 30, key: 1)));

    [Fact]
    public void A_violation_on_one_key_is_found_among_many()
    {
        var history = new List<Operation>();
        for (int key = 1; key <= 5; key++)
            for (int i = 0; i < 20; i++)
                history.Add(W(0, key * 100 + i, i * 10, i * 10 + 5, key));
        history.Add(R(1, 301, 500, 510, key: 3)); // key 3 was last written 319
        Assert.False(LinearizabilityChecker.IsLinearizable(history, out var problem));
        Assert.Contains("key 3", problem);
    }

    [Fact]
    public void Many_concurrent_operations_are_checked_quickly()
    {
        // 200 overlapping writes and reads that are linearizable; the memoisation keeps this fast.
        var history = new List<Operation>();
        for (int i = 0; i < 100; i++)
        {
            history.Add(W(0, i + 1, i * 10, i * 10 + 25));
            history.Add(R(1, i + 1, i * 10 + 26, i * 10 + 40));
        }
        Assert.True(Check(history.ToArray()));
    }

    // ---- the compare-and-set register with revisions ----

    private static Operation Put(int client, int value, long revision, long call, long ret) =>
        new(client, true, 1, value, call, ret) { Revision = revision };

    private static Operation Get(int client, int value, long revision, long call, long ret) =>
        new(client, false, 1, value, call, ret) { Revision = revision };

    private static Operation CasRev(int client, long expected, int value, long revision, bool? ok, long call, long ret, long current = 0) =>
        new(client, true, 1, value, call, ret) { Kind = OpKind.CasRevision, Expected = expected, Revision = revision, Succeeded = ok, CurrentRevision = current };

    private static Operation CasVal(int client, int expected, int value, long revision, bool? ok, long call, long ret, long current = 0) =>
        new(client, true, 1, value, call, ret) { Kind = OpKind.CasValue, Expected = expected, Revision = revision, Succeeded = ok, CurrentRevision = current };

    [Fact]
    public void A_read_must_see_the_revision_of_the_write_it_sees() =>
        Assert.False(Check(Put(0, 1, 5, 0, 10), Get(1, 1, 6, 20, 30)));

    [Fact]
    public void Of_two_racing_compare_and_sets_on_one_revision_one_wins_and_the_other_sees_the_winners_revision()
    {
        var history = new[]
        {
            Put(0, 1, 5, 0, 10),
            CasRev(1, 5, 2, 7, true, 20, 40),
            CasRev(2, 5, 3, 8, false, 20, 40, current: 7),
            Get(3, 2, 7, 50, 60),
        };
        Assert.True(Check(history));
        // Both told they won: impossible.
        Assert.False(Check(history[0], history[1], CasRev(2, 5, 3, 8, true, 20, 40), history[3]));
        // The loser names a revision that never was current.
        Assert.False(Check(history[0], history[1], CasRev(2, 5, 3, 8, false, 20, 40, current: 6), history[3]));
        // A failure while the condition held (nothing else could have moved the key).
        Assert.False(Check(Put(0, 1, 5, 0, 10), CasRev(1, 5, 2, 7, false, 20, 40, current: 5)));
    }

    [Fact]
    public void A_compare_and_set_with_unknown_outcome_applies_exactly_when_its_condition_holds()
    {
        // It may have applied (its condition held after the put) and a later read sees it...
        Assert.True(Check(Put(0, 1, 5, 0, 10), CasVal(1, 1, 2, 7, null, 20, Pending), Get(2, 2, 7, 50, 60)));
        // ...but not while its condition was false.
        Assert.False(Check(Put(0, 9, 5, 0, 10), CasVal(1, 1, 2, 7, null, 20, Pending), Get(2, 2, 7, 50, 60)));
        // Absent is value 0 and revision 0.
        Assert.True(Check(CasVal(1, 0, 2, 7, true, 0, 10), CasRev(2, 0, 3, 8, false, 20, 30, current: 7)));
    }

    [Fact]
    public void A_history_too_large_for_the_search_fails_with_the_key_instead_of_running_on()
    {
        // 30 overlapping writes of unknown outcome, then a read of a value none wrote: every subset
        // and order of them would have to be tried before the answer is no.
        var history = Enumerable.Range(1, 30).Select(i => W(i, i, i, Pending)).Append(R(0, 999, 100, 110)).ToList();
        var e = Assert.Throws<LinearizabilitySearchTooLargeException>(() => LinearizabilityChecker.IsLinearizable(history, out _, maxSearchStates: 20_000));
        Assert.Contains("gave up after 20,000 states", e.Message);
        Assert.Contains("on key 1 (31 operations, 30 of unknown outcome)", e.Message);
        Assert.Contains("read  999", e.Message);
    }

    [Fact]
    public void Writes_that_name_their_log_index_take_effect_in_the_logs_order()
    {
        // Index 7 was answered before index 5 was even asked for: the log cannot have put them so.
        Assert.False(Check(Put(0, 1, 7, 0, 10), Put(1, 2, 5, 20, 30), Get(2, 2, 5, 40, 50)));
        Assert.True(Check(Put(0, 1, 5, 0, 10), Put(1, 2, 7, 20, 30), Get(2, 2, 7, 40, 50)));
        // A compare-and-set that changed nothing still has its place: index 6 failed on revision 5,
        // so it came before 7, even though the register alone could not tell.
        Assert.False(Check(Put(0, 1, 5, 0, 10), Put(1, 2, 7, 20, 30), CasRev(2, 0, 3, 6, false, 40, 50, current: 5)));
    }

    [Fact]
    public void Many_overlapping_writes_with_known_log_indexes_are_checked_quickly()
    {
        // The shape that once exhausted the search: after a stretch without a leader, 40 writes
        // commit together (one change, then compare-and-sets whose condition fails), while reads
        // in between still see the value before them.
        var history = new List<Operation> { Put(0, 1, 1, 0, 10) };
        history.Add(Put(1, 2, 2, 20, 9_000));
        for (var i = 0; i < 40; i++) history.Add(CasVal(i % 4, 99, 100 + i, 3 + i, null, 30 + i * 10, 9_000));
        history.Add(Get(5, 1, 1, 500, 510));
        history.Add(Get(5, 2, 2, 9_100, 9_110));
        Assert.True(LinearizabilityChecker.IsLinearizable(history, out var problem, maxSearchStates: 20_000), problem);
    }
}
