using RaftServer.Consensus;
using static RaftServer.Tests.Consensus.Harness;

namespace RaftServer.Tests.Consensus;

/// <summary>
/// <see cref="RaftNode.LeaderUnreachable"/>: the driver's hint that the leader's process is gone.
/// It may only bring an election forward and drop the leader's lease on this node; it must do
/// nothing in any other case, and a wrong hint must not depose a leader the others hear from.
/// </summary>
public class LeaderUnreachableTests
{
    private static readonly int[] Three = [1, 2, 3];
    private const int ElectionTicks = 10;

    /// <summary>A follower of node 2 in term 1 that just heard its heartbeat.</summary>
    private static RaftNode Follower(int seed = 1, int heartbeatTicks = 1)
    {
        var node = Node(1, Three, State(1, logTerms: [1]), preVote: true, checkQuorum: true, electionTicks: ElectionTicks,
            heartbeatTicks: heartbeatTicks, seed: seed);
        node.Step(new Message { Type = MessageType.Heartbeat, From = 2, To = 1, Term = 1 });
        Take(node);
        Assert.Equal((Role.Follower, 2), (node.Role, node.LeaderId));
        return node;
    }

    /// <summary>Three nodes with pre-vote and check-quorum, ticked until one of them leads.</summary>
    private static (TestCluster Cluster, int Leader, long Term) ClusterWithLeader(int seed)
    {
        var cluster = new TestCluster(3, seed, o => o with { PreVote = true, CheckQuorum = true, ElectionTicks = ElectionTicks });
        cluster.TickAll(40);
        int leader = cluster.Leader()!.Value;
        return (cluster, leader, cluster[leader].Term);
    }

    /// <summary>Ticks until the node campaigns; returns how many ticks that took.</summary>
    private static int TicksToCampaign(RaftNode node)
    {
        for (int ticks = 1; ticks <= 100; ticks++)
        {
            node.Tick();
            if (node.Role != Role.Follower) return ticks;
        }
        throw new InvalidOperationException("the node never campaigned");
    }

    [Fact]
    public void A_follower_told_its_leader_is_gone_forgets_it_and_pre_votes_at_its_next_tick()
    {
        for (int seed = 1; seed <= 20; seed++)
        {
            var node = Follower(seed);
            node.LeaderUnreachable(2);
            Assert.Equal(SoftState.NoLeader, node.LeaderId);

            Assert.Equal(1, TicksToCampaign(node)); // node 1 is the first of the survivors (1, 3)
            Assert.Equal(Role.PreCandidate, node.Role); // pre-vote still comes first
            Assert.Equal(1, node.Term);
            Assert.All(Messages(node), m => Assert.Equal((MessageType.PreVote, 2L), (m.Type, m.Term)));
        }
    }

    [Fact]
    public void A_pre_candidate_on_the_hint_asks_again_at_each_tick_for_an_election_timeout_then_waits_its_timer()
    {
        // Nobody answers (the other survivor is still in the lease and ignores it): it asks again
        // at each of the next ElectionTicks ticks, then only when its election timer fires.
        var node = Follower();
        node.LeaderUnreachable(2);
        Assert.Equal(1, TicksToCampaign(node));
        Take(node);
        for (int tick = 1; tick <= ElectionTicks; tick++)
        {
            node.Tick();
            Assert.Equal([(MessageType.PreVote, 2), (MessageType.PreVote, 3)],
                Messages(node).Select(m => (m.Type, m.To)).Order().ToArray());
        }
        node.Tick();
        Assert.Empty(Messages(node));
        Assert.Equal(Role.PreCandidate, node.Role);
        Assert.Equal(1, node.Term);
    }

    [Fact]
    public void A_refused_pre_vote_or_a_leader_heard_ends_the_repeated_asking()
    {
        var refused = Follower();
        refused.LeaderUnreachable(2);
        TicksToCampaign(refused);
        Take(refused);
        // Both others refuse (their logs are ahead, say): a majority against it.
        refused.Step(new Message { Type = MessageType.PreVoteResponse, From = 3, To = 1, Term = 1, Reject = true });
        refused.Step(new Message { Type = MessageType.PreVoteResponse, From = 2, To = 1, Term = 1, Reject = true });
        Assert.Equal(Role.Follower, refused.Role);
        AssertAsksOnlyOnItsTimer(refused);

        var heard = Follower();
        heard.LeaderUnreachable(2);
        TicksToCampaign(heard);
        heard.Step(new Message { Type = MessageType.Heartbeat, From = 2, To = 1, Term = 1 });
        Take(heard);
        Assert.Equal((Role.Follower, 2), (heard.Role, heard.LeaderId));
        AssertAsksOnlyOnItsTimer(heard);

        static void AssertAsksOnlyOnItsTimer(RaftNode node)
        {
            Assert.InRange(TicksToCampaign(node), ElectionTicks, 2 * ElectionTicks - 1);
            Take(node);
            node.Tick();
            Assert.Empty(Messages(node)); // not again at the next tick: that was for the hint
        }
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(2, 3, 4)]
    [InlineData(4, 5, 6)]
    [InlineData(5, 7, 8)]
    public void The_survivors_fire_in_slots_of_two_heartbeats_by_rank_so_they_do_not_split_the_vote(int id, int from, int to)
    {
        // Leader 3 of five is gone: 1, 2, 4, 5 survive, in that order.
        int[] five = [1, 2, 3, 4, 5];
        for (int seed = 1; seed <= 20; seed++)
        {
            var node = Node(id, five, State(1, logTerms: [1]), preVote: true, checkQuorum: true, electionTicks: ElectionTicks, seed: seed);
            node.Step(new Message { Type = MessageType.Heartbeat, From = 3, To = id, Term = 1 });
            node.LeaderUnreachable(3);
            Assert.InRange(TicksToCampaign(node), from, to);
        }
    }

    [Fact]
    public void Without_the_hint_the_follower_waits_a_whole_election_timeout()
    {
        for (int seed = 1; seed <= 20; seed++)
            Assert.InRange(TicksToCampaign(Follower(seed)), ElectionTicks, 2 * ElectionTicks - 1);
    }

    [Fact]
    public void The_heartbeat_period_scales_the_shortened_timer()
    {
        for (int seed = 1; seed <= 30; seed++)
        {
            var node = Follower(seed, heartbeatTicks: 2);
            node.LeaderUnreachable(2);
            Assert.InRange(TicksToCampaign(node), 1, 4); // two heartbeat periods of two ticks
        }
    }

    [Fact]
    public void A_timer_already_due_sooner_is_left_alone()
    {
        for (int seed = 1; seed <= 20; seed++)
        {
            var hinted = Follower(seed);
            var twin = Follower(seed);
            int due = TicksToCampaign(twin);
            Ticks(hinted, due - 1); // one tick before its own timeout
            hinted.LeaderUnreachable(2);
            hinted.Tick();
            Assert.Equal(Role.PreCandidate, hinted.Role);
        }
    }

    [Fact]
    public void A_hint_about_a_node_that_is_not_the_leader_changes_nothing()
    {
        for (int seed = 1; seed <= 20; seed++)
        {
            var hinted = Follower(seed);
            var twin = Follower(seed);
            hinted.LeaderUnreachable(3); // a follower, not our leader
            hinted.LeaderUnreachable(1); // ourselves
            hinted.LeaderUnreachable(SoftState.NoLeader);
            Assert.Equal(2, hinted.LeaderId);
            Assert.False(hinted.HasReady);
            // The same timer, to the tick, as a node that got no hint: nothing was drawn or moved.
            Assert.Equal(TicksToCampaign(twin), TicksToCampaign(hinted));

            // And the lease holds: a vote request of a higher term is still ignored.
            var other = Follower(seed);
            other.LeaderUnreachable(3);
            other.Step(new Message { Type = MessageType.PreVote, From = 3, To = 1, Term = 2, Index = 1, LogTerm = 1 });
            Assert.Empty(Messages(other));
        }
    }

    [Fact]
    public void A_follower_that_knows_no_leader_ignores_the_hint()
    {
        var hinted = Node(1, Three, State(1, logTerms: [1]), preVote: true, checkQuorum: true, electionTicks: ElectionTicks, seed: 7);
        var twin = Node(1, Three, State(1, logTerms: [1]), preVote: true, checkQuorum: true, electionTicks: ElectionTicks, seed: 7);
        hinted.LeaderUnreachable(2);
        Assert.Equal(TicksToCampaign(twin), TicksToCampaign(hinted));
    }

    [Fact]
    public void A_leader_ignores_the_hint()
    {
        var leader = Leader(1, Three, checkQuorum: true);
        leader.LeaderUnreachable(1);
        leader.LeaderUnreachable(2);
        Assert.Equal((Role.Leader, 1), (leader.Role, leader.LeaderId));
        Assert.False(leader.HasReady);
        Ticks(leader, 5);
        Assert.Equal(Role.Leader, leader.Role);
    }

    [Fact]
    public void Candidates_ignore_the_hint()
    {
        var node = Follower();
        TickUntilCampaign(node);
        Assert.Equal(Role.PreCandidate, node.Role);
        node.LeaderUnreachable(2);
        Assert.Equal(Role.PreCandidate, node.Role);
        node.Step(new Message { Type = MessageType.PreVoteResponse, From = 3, To = 1, Term = 2 });
        Assert.Equal(Role.Candidate, node.Role);
        Take(node);
        node.LeaderUnreachable(2);
        Assert.Equal((Role.Candidate, 2L), (node.Role, node.Term));
        Assert.False(node.HasReady);
    }

    [Fact]
    public void After_the_hint_a_follower_grants_pre_votes_and_votes_its_leader_lease_would_have_refused()
    {
        var hinted = Follower();
        hinted.LeaderUnreachable(2);
        hinted.Step(new Message { Type = MessageType.PreVote, From = 3, To = 1, Term = 2, Index = 1, LogTerm = 1 });
        var preVote = Assert.Single(Messages(hinted));
        Assert.Equal((MessageType.PreVoteResponse, false), (preVote.Type, preVote.Reject));

        hinted.Step(new Message { Type = MessageType.Vote, From = 3, To = 1, Term = 2, Index = 1, LogTerm = 1 });
        var ready = Take(hinted);
        var vote = Assert.Single(ready.Messages);
        Assert.Equal((MessageType.VoteResponse, false, 2L), (vote.Type, vote.Reject, vote.Term));
        Assert.Equal(new HardState(2, 3, 0), ready.HardState);

        // The log rule is untouched: a candidate whose log is behind is still refused.
        var behind = Follower();
        behind.LeaderUnreachable(2);
        behind.Step(new Message { Type = MessageType.PreVote, From = 3, To = 1, Term = 2, Index = 0, LogTerm = 0 });
        Assert.True(Assert.Single(Messages(behind)).Reject);
    }

    [Fact]
    public void A_follower_that_still_hears_from_its_leader_refuses_the_pre_vote()
    {
        // Node 1 was told (wrongly) that leader 2 is gone; node 3 was not and hears from it.
        var other = Node(3, Three, State(1, logTerms: [1]), preVote: true, checkQuorum: true, electionTicks: ElectionTicks);
        other.Step(new Message { Type = MessageType.Heartbeat, From = 2, To = 3, Term = 1 });
        Take(other);
        other.Step(new Message { Type = MessageType.PreVote, From = 1, To = 3, Term = 2, Index = 1, LogTerm = 1 });
        Assert.Empty(Messages(other));
        Assert.Equal((1L, 2), (other.Term, other.LeaderId));
    }

    [Fact]
    public void A_heartbeat_after_a_wrong_hint_restores_the_leader_and_a_whole_election_timeout()
    {
        for (int seed = 1; seed <= 20; seed++)
        {
            var node = Follower(seed);
            node.LeaderUnreachable(2);
            node.Step(new Message { Type = MessageType.Heartbeat, From = 2, To = 1, Term = 1 });
            Take(node);
            Assert.Equal(2, node.LeaderId);
            Assert.InRange(TicksToCampaign(node), ElectionTicks, 2 * ElectionTicks - 1);
        }
    }

    [Fact]
    public void A_wrong_hint_to_one_follower_does_not_depose_a_live_leader()
    {
        for (int seed = 1; seed <= 10; seed++)
        {
            var (cluster, leader, term) = ClusterWithLeader(seed);
            int follower = (leader + 1) % 3;

            // Again and again, as a transport that keeps failing to reach a live leader would.
            for (int round = 0; round < 5; round++)
            {
                cluster[follower].LeaderUnreachable(leader);
                cluster.Campaign(follower); // only it ticks: its timer fires within 3 ticks
                Assert.Equal(Role.PreCandidate, cluster[follower].Role);
                // The leader and the other follower, in the lease, ignored the pre-vote.
                Assert.Equal((Role.Leader, term), (cluster[leader].Role, cluster[leader].Term));
                cluster.TickAll(2); // the leader's heartbeat brings it back
                Assert.Equal((Role.Follower, leader), (cluster[follower].Role, cluster[follower].LeaderId));
            }
            cluster.TickAll(5 * ElectionTicks);
            Assert.Equal(leader, cluster.Leader());
            Assert.All(cluster.Nodes.Values, n => Assert.Equal(term, n.Term));
        }
    }

    [Fact]
    public void With_the_hint_the_survivors_elect_a_new_leader_within_a_few_ticks_of_the_crash()
    {
        for (int seed = 1; seed <= 20; seed++)
        {
            var (cluster, dead, term) = ClusterWithLeader(seed);
            cluster.Isolate(dead); // crashed: it sends and receives nothing any more
            foreach (var (id, node) in cluster.Nodes)
                if (id != dead) node.LeaderUnreachable(dead);

            int ticks = 0;
            while (!NewLeader(cluster, dead, term) && ticks < 10 * ElectionTicks)
            {
                // Out of phase, as real timers are: each node's tick is followed by delivery.
                foreach (var (id, node) in cluster.Nodes)
                {
                    if (id == dead) continue;
                    node.Tick();
                    cluster.Settle();
                }
                ticks++;
            }
            // Against 10-19 ticks without the hint (the election timeout).
            Assert.InRange(ticks, 1, 2);
            Assert.Equal(term + 1, cluster.Nodes.Values.Max(n => n.Term)); // one election, no split vote
        }
    }

    [Fact]
    public void A_survivor_that_hears_of_the_death_late_is_asked_again_at_the_next_tick()
    {
        for (int seed = 1; seed <= 20; seed++)
        {
            var (cluster, dead, term) = ClusterWithLeader(seed);
            cluster.Isolate(dead);
            var survivors = cluster.Nodes.Keys.Where(id => id != dead).Order().ToArray();
            int first = survivors[0], late = survivors[1];

            // Only the first survivor knows yet: its pre-vote reaches one still in the lease.
            cluster[first].LeaderUnreachable(dead);
            cluster[first].Tick();
            cluster.Settle();
            Assert.Equal(Role.PreCandidate, cluster[first].Role);
            Assert.Equal((Role.Follower, dead), (cluster[late].Role, cluster[late].LeaderId));

            // The other hears of it a moment later; the first asks again at its next tick and wins.
            cluster[late].LeaderUnreachable(dead);
            cluster[first].Tick();
            cluster.Settle();
            Assert.Equal((Role.Leader, term + 1), (cluster[first].Role, cluster[first].Term));
            Assert.Equal((first, term + 1), (cluster[late].LeaderId, cluster[late].Term));
        }
    }

    private static bool NewLeader(TestCluster cluster, int dead, long oldTerm) =>
        cluster.Nodes.Any(kv => kv.Key != dead && kv.Value.Role == Role.Leader && kv.Value.Term > oldTerm);
}
