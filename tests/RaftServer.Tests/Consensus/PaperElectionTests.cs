using RaftServer.Consensus;
using static RaftServer.Tests.Consensus.Harness;

namespace RaftServer.Tests.Consensus;

/// <summary>Figure 2 ("Rules for Servers", RequestVote) and §5.1-5.2, one test per rule, after
/// etcd's raft_paper_test.go. Pre-vote and check-quorum are off: this is the paper's algorithm.</summary>
public class PaperElectionTests
{
    private static readonly int[] Three = [1, 2, 3];

    [Theory]
    [InlineData(Role.Follower)]
    [InlineData(Role.Candidate)]
    [InlineData(Role.Leader)]
    public void Any_server_adopts_a_higher_term_and_becomes_follower(Role role)
    {
        // Figure 2, all servers: if RPC request or response contains term T > currentTerm: set
        // currentTerm = T, convert to follower (§5.1).
        var node = role == Role.Leader ? Leader(1, Three) : Node(1, Three);
        if (role == Role.Candidate) TickUntilCampaign(node);
        Assert.Equal(role, node.Role);

        node.Step(Append(2, 1, 7, 0, 0, 0));

        Assert.Equal(Role.Follower, node.Role);
        Assert.Equal(7, node.Term);
        Assert.Equal(2, node.LeaderId);
    }

    [Fact]
    public void A_message_of_a_stale_term_changes_nothing()
    {
        // §5.1: if a server receives a request with a stale term number, it rejects the request.
        var node = Node(1, Three, State(3, logTerms: []));
        node.Step(new Message { Type = MessageType.Vote, From = 2, To = 1, Term = 2, Index = 10, LogTerm = 2 });
        node.Step(Append(2, 1, 2, 0, 0, 0, E(1, 2)));

        Assert.Equal(3, node.Term);
        Assert.Equal(0, node.LastIndex);
        Assert.Equal(SoftState.NoLeader, node.LeaderId);
        // The stale leader is told the current term, so it steps down.
        var reply = Assert.Single(Messages(node));
        Assert.Equal(MessageType.AppendResponse, reply.Type);
        Assert.Equal(3, reply.Term);
    }

    [Fact]
    public void Servers_start_as_followers()
    {
        var node = Node(1, Three);
        Assert.Equal(Role.Follower, node.Role);
        Assert.Equal(0, node.Term);
        Assert.Equal(SoftState.NoLeader, node.LeaderId);
    }

    [Fact]
    public void Leader_sends_heartbeats_every_heartbeat_interval()
    {
        // Figure 2, leaders: send empty AppendEntries during idle periods to prevent election timeouts.
        var leader = Leader(1, Three);
        leader.Tick();
        var heartbeats = Messages(leader).Where(m => m.Type == MessageType.Heartbeat).ToList();
        Assert.Equal([2, 3], heartbeats.Select(m => m.To).Order());
        Assert.All(heartbeats, m => Assert.Equal(leader.Term, m.Term));
    }

    [Fact]
    public void Follower_that_hears_nothing_starts_an_election()
    {
        // Figure 2, followers: if the election timeout elapses without AppendEntries from the
        // current leader or granting a vote, convert to candidate: increment currentTerm, vote for
        // self, send RequestVote to all other servers.
        var node = Node(1, Three, State(1, logTerms: [1, 1]));
        TickUntilCampaign(node);
        var ready = Take(node);

        Assert.Equal(Role.Candidate, node.Role);
        Assert.Equal(2, node.Term);
        Assert.Equal(new HardState(2, 1, 0), ready.HardState);
        var votes = ready.Messages.Where(m => m.Type == MessageType.Vote).ToList();
        Assert.Equal([2, 3], votes.Select(m => m.To).Order());
        Assert.All(votes, m => Assert.Equal((2L, 2L, 1L), (m.Term, m.Index, m.LogTerm)));
    }

    [Fact]
    public void Candidate_that_neither_wins_nor_loses_starts_a_new_election()
    {
        // Figure 2, candidates: if election timeout elapses, start new election.
        var node = Node(1, [1, 2, 3, 4, 5]);
        TickUntilCampaign(node);
        Assert.Equal(1, node.Term);
        Ticks(node, 20);
        Assert.Equal(Role.Candidate, node.Role);
        Assert.Equal(2, node.Term);
    }

    [Fact]
    public void Following_a_leader_keeps_the_election_timer_from_firing()
    {
        var node = Node(1, Three);
        for (int i = 0; i < 100; i++)
        {
            node.Tick();
            node.Step(new Message { Type = MessageType.Heartbeat, From = 2, To = 1, Term = 1 });
        }
        Assert.Equal(Role.Follower, node.Role);
        Assert.Equal(1, node.Term);
    }

    [Theory]
    // size, granted-by (ids), expected role: a candidate wins with votes from a majority (§5.2).
    [InlineData(1, new int[0], Role.Leader)]
    [InlineData(3, new[] { 2 }, Role.Leader)]
    [InlineData(3, new[] { 2, 3 }, Role.Leader)]
    [InlineData(3, new int[0], Role.Candidate)]
    [InlineData(5, new[] { 2 }, Role.Candidate)]
    [InlineData(5, new[] { 2, 3 }, Role.Leader)]
    [InlineData(5, new[] { 2, 3, 4, 5 }, Role.Leader)]
    public void Candidate_wins_with_a_majority_of_votes(int size, int[] grantedBy, Role expected)
    {
        var members = Enumerable.Range(1, size).ToArray();
        var node = Node(1, members);
        TickUntilCampaign(node);
        foreach (int peer in grantedBy)
            node.Step(new Message { Type = MessageType.VoteResponse, From = peer, To = 1, Term = node.Term });
        Assert.Equal(expected, node.Role);
    }

    [Fact]
    public void Candidate_rejected_by_a_majority_returns_to_follower()
    {
        var node = Node(1, Three);
        TickUntilCampaign(node);
        node.Step(new Message { Type = MessageType.VoteResponse, From = 2, To = 1, Term = 1, Reject = true });
        Assert.Equal(Role.Candidate, node.Role);
        node.Step(new Message { Type = MessageType.VoteResponse, From = 3, To = 1, Term = 1, Reject = true });
        Assert.Equal(Role.Follower, node.Role);
        Assert.Equal(1, node.Term);
    }

    [Fact]
    public void A_vote_counts_once_however_often_it_is_delivered()
    {
        var node = Node(1, [1, 2, 3, 4, 5]);
        TickUntilCampaign(node);
        for (int i = 0; i < 3; i++)
            node.Step(new Message { Type = MessageType.VoteResponse, From = 2, To = 1, Term = 1 });
        Assert.Equal(Role.Candidate, node.Role);
    }

    [Fact]
    public void Follower_votes_at_most_once_per_term_first_come_first_served()
    {
        // §5.2: each server votes for at most one candidate in a term; re-granting to the same
        // candidate (a duplicated request) is allowed.
        var node = Node(1, Three);
        node.Step(new Message { Type = MessageType.Vote, From = 2, To = 1, Term = 1 });
        var first = Take(node);
        Assert.False(Assert.Single(first.Messages).Reject);
        Assert.Equal(new VoteGrant(2, 1), first.VoteGranted);
        Assert.Equal(2, first.HardState!.Value.VotedFor);

        node.Step(new Message { Type = MessageType.Vote, From = 3, To = 1, Term = 1 });
        Assert.True(Assert.Single(Messages(node)).Reject);

        node.Step(new Message { Type = MessageType.Vote, From = 2, To = 1, Term = 1 });
        var again = Take(node);
        Assert.False(Assert.Single(again.Messages).Reject);
        Assert.Null(again.VoteGranted); // not a new grant
    }

    [Fact]
    public void A_vote_survives_a_restart()
    {
        var node = Node(1, Three, State(1, votedFor: 2));
        node.Step(new Message { Type = MessageType.Vote, From = 3, To = 1, Term = 1 });
        Assert.True(Assert.Single(Messages(node)).Reject);
    }

    [Fact]
    public void Candidate_that_hears_from_a_leader_of_its_term_follows_it()
    {
        // §5.2: if the leader's term is at least as large as the candidate's current term, the
        // candidate recognizes the leader as legitimate and returns to follower state.
        var node = Node(1, Three);
        TickUntilCampaign(node);
        node.Step(Append(2, 1, node.Term, 0, 0, 0));
        Assert.Equal(Role.Follower, node.Role);
        Assert.Equal(2, node.LeaderId);
    }

    [Fact]
    public void Election_timeouts_are_random_within_one_to_two_timeouts()
    {
        // §5.2: randomized election timeouts, here drawn from [ElectionTicks, 2 * ElectionTicks).
        var seen = new HashSet<int>();
        for (int seed = 0; seed < 200; seed++)
        {
            var node = Node(1, Three, seed: seed);
            int ticks = 0;
            while (node.Role == Role.Follower) { node.Tick(); ticks++; }
            Assert.InRange(ticks, 10, 19);
            seen.Add(ticks);
        }
        Assert.True(seen.Count >= 8, $"only {seen.Count} distinct timeouts");
    }

    [Theory]
    // §5.4.1: vote only for a candidate whose log is at least as up-to-date: later last term, or
    // the same last term and at least as long. Our log: terms [1, 2, 2] (last 3/2).
    [InlineData(2, 2, false)]
    [InlineData(3, 2, true)]
    [InlineData(4, 2, true)]
    [InlineData(10, 1, false)]
    [InlineData(1, 3, true)]
    [InlineData(0, 0, false)]
    public void Vote_only_for_a_candidate_at_least_as_up_to_date(long lastIndex, long lastTerm, bool granted)
    {
        var node = Node(1, Three, State(2, logTerms: [1, 2, 2]));
        node.Step(new Message { Type = MessageType.Vote, From = 2, To = 1, Term = 3, Index = lastIndex, LogTerm = lastTerm });
        var reply = Assert.Single(Messages(node));
        Assert.Equal(MessageType.VoteResponse, reply.Type);
        Assert.Equal(!granted, reply.Reject);
        Assert.Equal(3, node.Term); // the term is adopted either way
    }

    [Fact]
    public void Rejecting_a_stale_candidate_does_not_restart_the_election_timer()
    {
        // Figure 2 restarts the timer only for a leader's AppendEntries or a granted vote: a stream
        // of candidates with short logs must not keep an up-to-date follower from campaigning.
        var node = Node(1, Three, State(1, logTerms: [1, 1]));
        for (int term = 2; term < 40 && node.Role == Role.Follower; term++)
        {
            node.Step(new Message { Type = MessageType.Vote, From = 2, To = 1, Term = term, Index = 0, LogTerm = 0 });
            node.Tick();
        }
        Assert.Equal(Role.Candidate, node.Role);
    }

    [Fact]
    public void A_new_leader_appends_a_no_op_of_its_term()
    {
        // §8: a leader commits a blank no-op entry at the start of its term.
        var node = Node(1, Three, State(1, logTerms: [1]));
        TickUntilCampaign(node);
        node.Step(new Message { Type = MessageType.VoteResponse, From = 2, To = 1, Term = 2 });
        Assert.Equal(Role.Leader, node.Role);
        var ready = Take(node);
        var noOp = Assert.Single(ready.Entries);
        Assert.Equal((2L, 2L, EntryKind.NoOp), (noOp.Index, noOp.Term, noOp.Kind));
        Assert.Equal(new SoftState(Role.Leader, 2, 1), ready.SoftState);
        Assert.All(ready.Messages.Where(m => m.Type == MessageType.Append), m => Assert.Single(m.Entries));
    }
}
