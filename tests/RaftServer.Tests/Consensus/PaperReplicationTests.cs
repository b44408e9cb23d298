using RaftServer.Consensus;
using static RaftServer.Tests.Consensus.Harness;

namespace RaftServer.Tests.Consensus;

/// <summary>Figure 2 (AppendEntries, leaders' rules) and §5.3-5.4, one test per rule, after
/// etcd's raft_paper_test.go.</summary>
public class PaperReplicationTests
{
    private static readonly int[] Three = [1, 2, 3];

    private static Message Ack(int from, RaftNode leader, long index) =>
        new() { Type = MessageType.AppendResponse, From = from, To = leader.Id, Term = leader.Term, Index = index };

    [Fact]
    public void Leader_appends_a_proposal_and_replicates_it_to_every_follower()
    {
        // §5.3: the leader appends the command to its log, then issues AppendEntries in parallel.
        var leader = Leader(1, Three);
        var result = leader.Propose([42]);
        Assert.Equal(new ProposeResult(ProposeOutcome.Accepted, 2, 1, 1), result);

        var ready = Take(leader);
        var entry = Assert.Single(ready.Entries);
        Assert.Equal((2L, 1L, EntryKind.Command, (byte)42), (entry.Index, entry.Term, entry.Kind, entry.Data.Single()));
        var appends = ready.Messages.Where(m => m.Type == MessageType.Append).ToList();
        Assert.Equal([2, 3], appends.Select(m => m.To).Order());
        Assert.All(appends, m =>
        {
            Assert.Equal((1L, 1L), (m.Index, m.LogTerm)); // previous entry: the no-op
            Assert.Equal([2L], m.Entries.Select(e => e.Index));
        });
    }

    [Fact]
    public void Proposals_of_one_turn_share_one_append_per_follower()
    {
        var leader = Leader(1, Three);
        for (int i = 0; i < 10; i++) leader.Propose([(byte)i]);
        var appends = Messages(leader).Where(m => m.Type == MessageType.Append).ToList();
        Assert.Equal(2, appends.Count);
        Assert.All(appends, m => Assert.Equal(10, m.Entries.Count));
    }

    [Fact]
    public void Non_leaders_refuse_proposals_with_a_leader_hint()
    {
        var node = Node(1, Three);
        node.Step(new Message { Type = MessageType.Heartbeat, From = 3, To = 1, Term = 1 });
        Assert.Equal(new ProposeResult(ProposeOutcome.NotLeader, 0, 0, 3), node.Propose([1]));
    }

    [Fact]
    public void Leader_commits_an_entry_once_a_majority_stores_it()
    {
        // §5.3: a log entry is committed once the leader that created it has replicated it on a
        // majority; the leader applies it and tells the followers in later messages.
        var leader = Leader(1, [1, 2, 3, 4, 5]);
        long index = leader.Propose([1]).Index;
        Take(leader);
        leader.Step(Ack(2, leader, index));
        Assert.Equal(index - 1, leader.CommitIndex);
        leader.Step(Ack(3, leader, index));
        Assert.Equal(index, leader.CommitIndex);

        var ready = Take(leader);
        Assert.Equal([index], ready.CommittedEntries.Select(e => e.Index));
        Assert.Equal(index, ready.HardState!.Value.Commit);
        // Followers that hold it hear of the commit at once.
        var notices = ready.Messages.Where(m => m.Type == MessageType.Append && m.Commit == index).Select(m => m.To).Order();
        Assert.Equal([2, 3], notices);
    }

    [Fact]
    public void Committing_an_entry_commits_all_preceding_entries()
    {
        // §5.3: committing an entry also commits all preceding entries, including those of
        // previous leaders. The follower acknowledges the whole log at once.
        var leader = Node(1, Three, State(2, logTerms: [1, 2]));
        TickUntilCampaign(leader);
        leader.Step(new Message { Type = MessageType.VoteResponse, From = 2, To = 1, Term = 3 });
        Take(leader);
        leader.Step(Ack(2, leader, 3));
        Assert.Equal(3, leader.CommitIndex);
        Assert.Equal([1L, 2, 3], Take(leader).CommittedEntries.Select(e => e.Index));
    }

    [Fact]
    public void Leader_only_commits_by_counting_replicas_of_its_own_term()
    {
        // §5.4.2 / Figure 8: an entry of an earlier term on a majority is not committed by that
        // count; only when an entry of the current term is.
        var leader = Node(1, [1, 2, 3, 4, 5], State(2, logTerms: [1, 2]));
        TickUntilCampaign(leader);
        leader.Step(new Message { Type = MessageType.VoteResponse, From = 2, To = 1, Term = 3 });
        leader.Step(new Message { Type = MessageType.VoteResponse, From = 3, To = 1, Term = 3 });
        Assert.Equal(Role.Leader, leader.Role);
        Take(leader);

        leader.Step(Ack(2, leader, 2));
        leader.Step(Ack(3, leader, 2));
        Assert.Equal(0, leader.CommitIndex); // index 2 (term 2) is on 3 of 5, yet not committed

        leader.Step(Ack(2, leader, 3));
        leader.Step(Ack(3, leader, 3));
        Assert.Equal(3, leader.CommitIndex); // the term-3 no-op commits it and index 2
    }

    [Fact]
    public void Follower_appends_and_commits_up_to_the_leaders_commit()
    {
        // Figure 2 receiver rules 4 and 5.
        var node = Node(1, Three);
        node.Step(Append(2, 1, 1, 0, 0, 1, E(1, 1), E(2, 1)));
        Assert.Equal(2, node.LastIndex);
        Assert.Equal(1, node.CommitIndex);
        var ready = Take(node);
        Assert.Equal(2, ready.Entries.Count);
        Assert.Equal([1L], ready.CommittedEntries.Select(e => e.Index));
        var ack = Assert.Single(ready.Messages);
        Assert.Equal((MessageType.AppendResponse, false, 2L), (ack.Type, ack.Reject, ack.Index));
    }

    [Fact]
    public void Follower_commits_no_further_than_the_last_new_entry()
    {
        // Rule 5: commitIndex = min(leaderCommit, index of last new entry). Entries the follower
        // holds beyond the ones this message vouches for may belong to a stale term.
        var node = Node(1, Three, State(1, logTerms: [1, 1, 1, 1]));
        node.Step(Append(2, 1, 2, 1, 1, 4, E(2, 1)));
        Assert.Equal(2, node.CommitIndex);
    }

    [Theory]
    // Rule 2: reply false if the log has no entry at prevLogIndex whose term matches prevLogTerm.
    [InlineData(3, 3, true)] // matching
    [InlineData(3, 2, false)] // term mismatch at index 3
    [InlineData(4, 3, false)] // index beyond the log
    [InlineData(0, 0, true)] // the empty prefix always matches
    public void Follower_checks_the_previous_entry(long prevIndex, long prevTerm, bool accepted)
    {
        var node = Node(1, Three, State(3, logTerms: [1, 2, 3]));
        node.Step(Append(2, 1, 3, prevIndex, prevTerm, 0));
        var reply = Assert.Single(Messages(node));
        Assert.Equal(!accepted, reply.Reject);
    }

    [Theory]
    // Rules 3 and 4: delete a conflicting entry and all after it; append new ones; keep matching ones.
    [InlineData(0, 0, new long[] { 1, 2 }, new long[] { 1, 2 })] // agrees: nothing changes
    [InlineData(0, 0, new long[] { 1, 3 }, new long[] { 1, 3 })] // conflict at 2: truncated and replaced
    [InlineData(2, 2, new long[] { 2, 2 }, new long[] { 1, 2, 2, 2 })] // appended
    [InlineData(1, 1, new long[] { 4 }, new long[] { 1, 4 })]
    [InlineData(1, 1, new long[] { 2 }, new long[] { 1, 2 })] // a stale shorter message truncates nothing
    public void Follower_truncates_a_conflicting_suffix_and_appends(long prevIndex, long prevTerm, long[] terms, long[] expected)
    {
        var node = Node(1, Three, State(2, logTerms: [1, 2]));
        var entries = terms.Select((t, i) => E(prevIndex + 1 + i, t)).ToArray();
        node.Step(Append(2, 1, 4, prevIndex, prevTerm, 0, entries));
        Assert.Equal(expected, Enumerable.Range(1, (int)node.LastIndex).Select(i => node.TermAt(i)));
        var ready = Take(node);
        if (!expected.SequenceEqual([1L, 2L]))
            Assert.Equal(expected.Length, ready.Entries[^1].Index); // the changed suffix is handed to persist
    }

    [Fact]
    public void A_truncation_is_handed_to_the_driver_from_the_conflict_on()
    {
        var node = Node(1, Three, State(2, logTerms: [1, 2, 2, 2]));
        node.Step(Append(2, 1, 3, 1, 1, 0, E(2, 3)));
        var ready = Take(node);
        Assert.Equal([(2L, 3L)], ready.Entries.Select(e => (e.Index, e.Term)));
        Assert.Equal(2, node.LastIndex);
    }

    [Fact]
    public void Rejection_hints_the_conflicting_term_and_its_first_index()
    {
        // §5.3's optimisation: the follower returns the term of the conflicting entry and the
        // first index it stores for that term.
        var node = Node(1, Three, State(3, logTerms: [1, 2, 2, 2, 3]));
        node.Step(Append(2, 1, 4, 4, 4, 0));
        var reply = Assert.Single(Messages(node));
        Assert.True(reply.Reject);
        Assert.Equal((4L, 2L, 2L), (reply.Index, reply.HintTerm, reply.RejectHint));

        // Never below the commit index + 1: committed entries match the leader's.
        var committed = Node(1, Three, State(3, commit: 3, logTerms: [1, 2, 2, 2, 3]));
        committed.Step(Append(2, 1, 4, 4, 4, 0));
        reply = Assert.Single(Messages(committed));
        Assert.Equal((2L, 4L), (reply.HintTerm, reply.RejectHint));

        // Too short: term 0 and the end of the log.
        node.Step(Append(2, 1, 4, 9, 4, 0));
        reply = Assert.Single(Messages(node));
        Assert.Equal((0L, 6L), (reply.HintTerm, reply.RejectHint));
    }

    [Theory]
    // Figure 7's followers (a)-(f) against the term-8 leader's log; each must end up identical.
    [InlineData(new long[] { 1, 1, 1, 4, 4, 5, 5, 6, 6 })]
    [InlineData(new long[] { 1, 1, 1, 4 })]
    [InlineData(new long[] { 1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6 })]
    [InlineData(new long[] { 1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7 })]
    [InlineData(new long[] { 1, 1, 1, 4, 4, 4, 4 })]
    [InlineData(new long[] { 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3 })]
    public void Leader_brings_any_follower_log_in_line_with_its_own(long[] followerTerms)
    {
        long[] leaderTerms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
        var leader = Node(1, Three, State(7, logTerms: leaderTerms));
        var follower = Node(2, Three, State(7, logTerms: followerTerms));
        var other = Node(3, Three, State(7, logTerms: leaderTerms));
        TickUntilCampaign(leader);
        leader.Step(new Message { Type = MessageType.VoteResponse, From = 3, To = 1, Term = 8 });
        Assert.Equal(Role.Leader, leader.Role);

        int roundTrips = 0;
        var toFollower = Messages(leader).Where(m => m.To == 2).ToList();
        while (toFollower.Count > 0 && roundTrips < 20)
        {
            roundTrips++;
            foreach (var m in toFollower) follower.Step(m);
            foreach (var reply in Messages(follower)) leader.Step(reply);
            toFollower = Messages(leader).Where(m => m.To == 2).ToList();
        }
        Assert.Equal(Enumerable.Range(1, (int)leader.LastIndex).Select(i => leader.TermAt(i)),
                     Enumerable.Range(1, (int)follower.LastIndex).Select(i => follower.TermAt(i)));
        // The conflict hint skips a whole term per round trip, not an entry.
        Assert.True(roundTrips <= 5, $"{roundTrips} round trips");
        _ = other;
    }

    [Fact]
    public void Leader_backs_up_over_50_divergent_entries_in_a_few_round_trips()
    {
        var leaderLog = Enumerable.Repeat(1L, 5).Concat(Enumerable.Repeat(3L, 50)).ToArray();
        var followerLog = Enumerable.Repeat(1L, 5).Concat(Enumerable.Repeat(2L, 50)).ToArray();
        var leader = Node(1, Three, State(3, logTerms: leaderLog));
        var follower = Node(2, Three, State(3, logTerms: followerLog));
        TickUntilCampaign(leader);
        leader.Step(new Message { Type = MessageType.VoteResponse, From = 3, To = 1, Term = 4 });

        int roundTrips = 0;
        var toFollower = Messages(leader).Where(m => m.To == 2).ToList();
        while (toFollower.Count > 0 && roundTrips < 60)
        {
            roundTrips++;
            foreach (var m in toFollower) follower.Step(m);
            foreach (var reply in Messages(follower)) leader.Step(reply);
            toFollower = Messages(leader).Where(m => m.To == 2).ToList();
        }
        Assert.Equal(leader.LastIndex, follower.LastIndex);
        Assert.Equal(4, follower.TermAt(follower.LastIndex));
        Assert.True(roundTrips <= 4, $"{roundTrips} round trips");
    }

    [Fact]
    public void Replication_is_pipelined_up_to_the_in_flight_bound_and_batched_by_bytes()
    {
        var leader = Leader(1, [1, 2], maxInflight: 3, maxAppendBytes: 10);
        for (int i = 0; i < 20; i++) leader.Propose(new byte[5]);
        var appends = Messages(leader).Where(m => m.Type == MessageType.Append).ToList();
        // 10 bytes per message = 2 entries; at most 3 messages unacknowledged.
        Assert.Equal(3, appends.Count);
        Assert.All(appends, m => Assert.Equal(2, m.Entries.Count));
        Assert.Equal([1L, 3, 5], appends.Select(m => m.Index));

        // Each acknowledgement frees room for one more.
        leader.Step(Ack(2, leader, 3));
        var more = Messages(leader).Where(m => m.Type == MessageType.Append && m.Entries.Count > 0).ToList();
        Assert.Equal([7L], more.Select(m => m.Index));
    }

    [Fact]
    public void An_entry_bigger_than_the_byte_bound_still_goes_alone()
    {
        var leader = Leader(1, [1, 2], maxAppendBytes: 4);
        leader.Propose(new byte[100]);
        var append = Assert.Single(Messages(leader), m => m.Type == MessageType.Append);
        Assert.Single(append.Entries);
    }

    [Fact]
    public void A_follower_that_missed_the_last_append_catches_up_on_the_next_heartbeat()
    {
        var leader = Leader(1, [1, 2]);
        leader.Propose([1]);
        Take(leader); // the Append is lost
        leader.Tick();
        Take(leader);
        leader.Step(new Message { Type = MessageType.HeartbeatResponse, From = 2, To = 1, Term = 1 });
        var probe = Assert.Single(Messages(leader), m => m.Type == MessageType.Append);
        // An empty Append at the leader's end: the follower rejects it, which starts the catch-up.
        var follower = Node(2, [1, 2], State(1, logTerms: [1]));
        follower.Step(probe);
        var reject = Assert.Single(Messages(follower));
        Assert.True(reject.Reject);
        leader.Step(reject);
        var resend = Assert.Single(Messages(leader), m => m.Type == MessageType.Append);
        Assert.Equal([2L], resend.Entries.Select(e => e.Index));
    }

    [Fact]
    public void Committed_entries_are_delivered_once_in_order()
    {
        var leader = Node(1, [1]);
        TickUntilCampaign(leader);
        var delivered = new List<long>();
        delivered.AddRange(Take(leader).CommittedEntries.Select(e => e.Index));
        for (int i = 0; i < 5; i++)
        {
            leader.Propose([(byte)i]);
            if (i % 2 == 0) delivered.AddRange(Take(leader).CommittedEntries.Select(e => e.Index));
        }
        delivered.AddRange(Take(leader).CommittedEntries.Select(e => e.Index));
        Assert.False(leader.HasReady);
        Assert.Equal([1L, 2, 3, 4, 5, 6], delivered);
        Assert.Equal(6, leader.AppliedIndex);
    }
}
