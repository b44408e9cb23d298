using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.StateMachine;

namespace RaftServer.Tests.Hosting;

/// <summary>The rules that answer waiting clients, without a loop or a core.</summary>
public sealed class PendingRequestsTests
{
    private readonly List<PendingRead> _answered = new();
    private readonly PendingRequests _pending;

    public PendingRequestsTests() => _pending = new PendingRequests(readTimeoutTicks: 40, writeTimeoutTicks: 200, _answered.Add);

    /// <summary>The outcome of a request the code under test must already have answered.</summary>
    private static T Done<T>(TaskCompletionSource<T> request)
    {
        Assert.True(request.Task.IsCompleted, "the request is not answered");
        return request.Task.Result;
    }

    private static Entry Entry(long index, long term) => new(index, term, EntryKind.Command, [1]);
    private static ApplyResult Applied(long index) => new(ApplyStatus.Applied, new WriteResult(index, false));

    [Fact]
    public void A_write_is_answered_by_its_own_entry_only()
    {
        var w = new PendingWrite([1]);
        _pending.AddWrite(w, index: 5, term: 2, tick: 0);

        _pending.Applied(Entry(4, 2), Applied(4), leaderHint: 1);
        Assert.False(w.Task.IsCompleted);

        _pending.Applied(Entry(5, 2), Applied(5), leaderHint: 1);
        Assert.Equal(OutcomeCode.Ok, Done(w).Code);
        Assert.Equal(5, Done(w).Result.Index);
        Assert.Equal(0, _pending.Writes);
    }

    [Fact]
    public void Another_terms_entry_at_the_writes_index_means_the_write_was_lost()
    {
        var w = new PendingWrite([1]);
        _pending.AddWrite(w, index: 5, term: 2, tick: 0);

        _pending.Applied(Entry(5, 3), Applied(5), leaderHint: 3);

        Assert.Equal(OutcomeCode.Unavailable, Done(w).Code);
        Assert.Equal(3, Done(w).LeaderHint);
    }

    [Fact]
    public void A_stale_sequence_is_answered_as_such()
    {
        var w = new PendingWrite([1]);
        _pending.AddWrite(w, 5, 2, 0);
        _pending.Applied(Entry(5, 2), new ApplyResult(ApplyStatus.Stale, default), 1);
        Assert.Equal(OutcomeCode.Stale, Done(w).Code);
    }

    [Fact]
    public void A_write_whose_index_is_proposed_again_fails_and_the_new_one_waits()
    {
        var old = new PendingWrite([1]);
        var replacement = new PendingWrite([2]);
        _pending.AddWrite(old, 5, 2, 0);
        _pending.AddWrite(replacement, 5, 4, 0);

        Assert.Equal(OutcomeCode.Unavailable, Done(old).Code);
        Assert.False(replacement.Task.IsCompleted);
        _pending.Applied(Entry(5, 4), Applied(5), 1);
        Assert.Equal(OutcomeCode.Ok, Done(replacement).Code);
    }

    [Fact]
    public void Leadership_lost_fails_every_waiting_write_with_the_new_leader_as_hint()
    {
        var a = new PendingWrite([1]);
        var b = new PendingWrite([2]);
        _pending.AddWrite(a, 5, 2, 0);
        _pending.AddWrite(b, 6, 2, 0);

        _pending.FailWrites("leadership lost", leaderHint: 3);

        Assert.All([a, b], w => Assert.Equal((OutcomeCode.Unavailable, 3), (Done(w).Code, Done(w).LeaderHint)));
        Assert.Equal(0, _pending.Writes);
    }

    [Fact]
    public void A_snapshot_fails_the_writes_it_covers_and_keeps_the_others()
    {
        var covered = new PendingWrite([1]);
        var after = new PendingWrite([2]);
        _pending.AddWrite(covered, 5, 2, 0);
        _pending.AddWrite(after, 9, 2, 0);

        _pending.FailWritesThrough(7, "snapshot", 1);

        Assert.Equal(OutcomeCode.Unavailable, Done(covered).Code);
        Assert.False(after.Task.IsCompleted);
    }

    [Fact]
    public void The_reads_of_a_turn_share_one_read_index_and_wait_until_it_is_applied()
    {
        var r1 = new PendingRead { Key = "a" };
        var r2 = new PendingRead { Key = "b" };
        _pending.AddRead(r1);
        _pending.AddRead(r2);
        var asked = new List<long>();
        _pending.StartReadBatch(id => { asked.Add(id); return true; }, tick: 0, leaderHint: 1);
        Assert.Single(asked);

        _pending.ReadIndexDone(new ReadState(asked[0], Index: 10), applied: 9, leaderHint: 1, tick: 0);
        Assert.Empty(_answered);
        _pending.AnswerApplied(9);
        Assert.Empty(_answered);
        _pending.AnswerApplied(10);
        Assert.Equal([r1, r2], _answered);
        Assert.Equal(0, _pending.Reads);
    }

    [Fact]
    public void A_read_whose_index_is_already_applied_is_answered_at_once()
    {
        var r = new PendingRead { Key = "a" };
        _pending.AddRead(r);
        long id = 0;
        _pending.StartReadBatch(i => { id = i; return true; }, 0, 1);
        _pending.ReadIndexDone(new ReadState(id, 10), applied: 12, leaderHint: 1, tick: 0);
        Assert.Equal([r], _answered);
    }

    [Fact]
    public void A_read_fails_when_no_leader_is_known_or_leadership_cannot_be_confirmed()
    {
        var noLeader = new PendingRead { Key = "a" };
        _pending.AddRead(noLeader);
        _pending.StartReadBatch(_ => false, 0, SoftState.NoLeader);
        Assert.Equal(OutcomeCode.Unavailable, Done(noLeader).Code);

        var unconfirmed = new PendingRead { Key = "b" };
        _pending.AddRead(unconfirmed);
        long id = 0;
        _pending.StartReadBatch(i => { id = i; return true; }, 0, 1);
        _pending.ReadIndexDone(new ReadState(id, -1), 100, 1, 0);
        Assert.Equal(OutcomeCode.Unavailable, Done(unconfirmed).Code);
        Assert.Empty(_answered);
    }

    [Fact]
    public void The_safety_nets_fail_reads_and_writes_that_waited_too_long()
    {
        var w = new PendingWrite([1]);
        _pending.AddWrite(w, 5, 2, tick: 10);
        var r = new PendingRead { Key = "a" };
        _pending.AddRead(r);
        _pending.StartReadBatch(_ => true, tick: 10, 1);

        _pending.Expire(tick: 50, leaderHint: 1);
        Assert.False(r.Task.IsCompleted); // 40 ticks: not yet past the read timeout
        _pending.Expire(tick: 51, leaderHint: 1);
        Assert.Equal(OutcomeCode.Unavailable, Done(r).Code);
        Assert.False(w.Task.IsCompleted);
        _pending.Expire(tick: 211, leaderHint: 1);
        Assert.Equal(OutcomeCode.Unavailable, Done(w).Code);
    }

    [Fact]
    public void A_read_waiting_for_its_index_to_be_applied_fails_after_the_write_timeout()
    {
        var r = new PendingRead { Key = "a" };
        _pending.AddRead(r);
        long id = 0;
        _pending.StartReadBatch(i => { id = i; return true; }, tick: 10, 1);
        _pending.ReadIndexDone(new ReadState(id, 50), applied: 1, leaderHint: 1, tick: 12);

        _pending.Expire(tick: 212, leaderHint: 1);
        Assert.False(r.Task.IsCompleted); // 200 ticks: not yet past the write timeout
        Assert.Equal(1, _pending.Reads);
        _pending.Expire(tick: 213, leaderHint: 1);
        Assert.Equal(OutcomeCode.Unavailable, Done(r).Code);
        Assert.Contains("did not apply", Done(r).Reason);
        Assert.Equal(0, _pending.Reads);
        _pending.AnswerApplied(50);
        Assert.Empty(_answered);
    }

    [Fact]
    public void FailAll_answers_every_request_in_every_stage()
    {
        var w = new PendingWrite([1]);
        _pending.AddWrite(w, 5, 2, 0);
        var waitingIndex = new PendingRead { Key = "a" };
        _pending.AddRead(waitingIndex);
        _pending.StartReadBatch(_ => true, 0, 1);
        var waitingApply = new PendingRead { Key = "b" };
        _pending.AddRead(waitingApply);
        long id = 0;
        _pending.StartReadBatch(i => { id = i; return true; }, 0, 1);
        _pending.ReadIndexDone(new ReadState(id, 50), applied: 1, leaderHint: 1, tick: 0);
        var inBatch = new PendingRead { Key = "c" };
        _pending.AddRead(inBatch);

        _pending.FailAll("stopping", SoftState.NoLeader);

        Assert.Equal(OutcomeCode.Unavailable, Done(w).Code);
        Assert.All([waitingIndex, waitingApply, inBatch], r => Assert.Equal(OutcomeCode.Unavailable, Done(r).Code));
        Assert.Equal((0, 0), (_pending.Writes, _pending.Reads));
    }

    [Fact]
    public void Failed_writes_and_started_read_batches_are_counted_once_each()
    {
        var applied = new PendingWrite([1]);
        var lost = new PendingWrite([2]);
        var stepDown = new PendingWrite([3]);
        _pending.AddWrite(applied, 5, 2, 0);
        _pending.AddWrite(lost, 6, 2, 0);
        _pending.AddWrite(stepDown, 7, 2, 0);
        _pending.Applied(Entry(5, 2), Applied(5), 1);
        _pending.Applied(Entry(6, 3), Applied(6), 1);   // another term's entry: lost
        _pending.FailWrites("stepped down", 1);
        _pending.FailAll("stopping", 1);                  // nothing left to fail
        Assert.Equal(2, _pending.WritesFailed);

        _pending.AddRead(new PendingRead { Key = "a" });
        _pending.AddRead(new PendingRead { Key = "b" });
        _pending.StartReadBatch(_ => true, 0, 1);
        _pending.StartReadBatch(_ => true, 0, 1);        // no reads: no round
        Assert.Equal(1, _pending.ReadBatchesStarted);
    }
}
