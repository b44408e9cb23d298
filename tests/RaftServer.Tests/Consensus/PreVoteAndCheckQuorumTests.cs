using RaftServer.Consensus;
using static RaftServer.Tests.Consensus.Harness;

namespace RaftServer.Tests.Consensus;

/// <summary>Pre-vote (thesis §9.6), check-quorum and leader stickiness (thesis §6.2, §4.2.3).</summary>
public class PreVoteAndCheckQuorumTests
{
    private static readonly int[] Three = [1, 2, 3];

    [Fact]
    public void Pre_vote_asks_for_the_next_term_without_taking_it()
    {
        var node = Node(1, Three, State(1, logTerms: [1]), preVote: true);
        TickUntilCampaign(node);
        var ready = Take(node);
        Assert.Equal(Role.PreCandidate, node.Role);
        Assert.Equal(1, node.Term);
        Assert.Null(ready.HardState); // nothing to persist: no term, no vote
        Assert.All(ready.Messages, m => Assert.Equal((MessageType.PreVote, 2L, 1L, 1L), (m.Type, m.Term, m.Index, m.LogTerm)));
    }

    [Fact]
    public void A_granted_pre_vote_leads_to_a_real_election()
    {
        var node = Node(1, Three, preVote: true);
        TickUntilCampaign(node);
        Take(node);
        node.Step(new Message { Type = MessageType.PreVoteResponse, From = 2, To = 1, Term = 1 });
        Assert.Equal(Role.Candidate, node.Role);
        Assert.Equal(1, node.Term);
        Assert.All(Messages(node), m => Assert.Equal(MessageType.Vote, m.Type));
    }

    [Fact]
    public void A_refused_pre_vote_leaves_the_term_alone()
    {
        var node = Node(1, Three, State(1), preVote: true);
        TickUntilCampaign(node);
        node.Step(new Message { Type = MessageType.PreVoteResponse, From = 2, To = 1, Term = 1, Reject = true });
        node.Step(new Message { Type = MessageType.PreVoteResponse, From = 3, To = 1, Term = 1, Reject = true });
        Assert.Equal(Role.Follower, node.Role);
        Assert.Equal(1, node.Term);
    }

    [Fact]
    public void Pre_vote_is_granted_on_the_log_rule_without_recording_a_vote()
    {
        var node = Node(1, Three, State(1, votedFor: 3, logTerms: [1]), preVote: true);
        node.Step(new Message { Type = MessageType.PreVote, From = 2, To = 1, Term = 2, Index = 1, LogTerm = 1 });
        var ready = Take(node);
        var reply = Assert.Single(ready.Messages);
        Assert.Equal((MessageType.PreVoteResponse, false, 2L), (reply.Type, reply.Reject, reply.Term));
        Assert.Null(ready.HardState);
        Assert.Equal(1, node.Term);

        node.Step(new Message { Type = MessageType.PreVote, From = 2, To = 1, Term = 2, Index = 0, LogTerm = 0 });
        Assert.True(Assert.Single(Messages(node)).Reject);
    }

    [Fact]
    public void A_node_back_from_a_partition_does_not_disrupt_the_leader()
    {
        var cluster = new TestCluster(3, configure: o => o with { PreVote = true, CheckQuorum = true });
        cluster.TickAll(40);
        int leader = cluster.Leader()!.Value;
        long term = cluster[leader].Term;
        int loner = (leader + 1) % 3;

        cluster.Isolate(loner);
        cluster.TickAll(100); // it campaigns again and again, alone
        Assert.Equal(term, cluster[loner].Term);
        cluster.Heal();
        cluster.TickAll(30);

        Assert.Equal(leader, cluster.Leader());
        Assert.Equal(term, cluster[leader].Term);
        Assert.Equal(leader, cluster[loner].LeaderId);
    }

    [Fact]
    public void Without_pre_vote_a_returning_node_forces_a_new_term()
    {
        // The problem pre-vote solves, shown with it off.
        var cluster = new TestCluster(3, configure: o => o with { PreVote = false, CheckQuorum = false });
        cluster.TickAll(40);
        int leader = cluster.Leader()!.Value;
        long term = cluster[leader].Term;
        int loner = (leader + 1) % 3;
        cluster.Isolate(loner);
        cluster.TickAll(100);
        cluster.Heal();
        cluster.TickAll(60);
        Assert.True(cluster[leader].Term > term);
    }

    [Fact]
    public void Leader_that_hears_from_no_majority_for_an_election_timeout_steps_down()
    {
        var leader = Leader(1, Three, checkQuorum: true);
        Ticks(leader, 10); // first round: the peers were active when it was elected
        Assert.Equal(Role.Leader, leader.Role);
        Ticks(leader, 10);
        Assert.Equal(Role.Follower, leader.Role);
        Assert.Equal(1, leader.Term);
        Assert.Equal(SoftState.NoLeader, leader.LeaderId);
    }

    [Fact]
    public void Leader_that_hears_from_a_majority_stays()
    {
        var leader = Leader(1, [1, 2, 3, 4, 5], checkQuorum: true);
        for (int i = 0; i < 50; i++)
        {
            leader.Tick();
            foreach (int peer in new[] { 2, 3 })
                leader.Step(new Message { Type = MessageType.HeartbeatResponse, From = peer, To = 1, Term = 1 });
        }
        Assert.Equal(Role.Leader, leader.Role);
    }

    [Fact]
    public void Follower_that_hears_from_its_leader_ignores_vote_requests_of_higher_terms()
    {
        var node = Node(1, Three, checkQuorum: true);
        node.Step(new Message { Type = MessageType.Heartbeat, From = 2, To = 1, Term = 1 });
        node.Step(new Message { Type = MessageType.Vote, From = 3, To = 1, Term = 5, Index = 10, LogTerm = 5 });
        Assert.Equal(1, node.Term);
        Assert.DoesNotContain(Messages(node), m => m.Type == MessageType.VoteResponse);

        // Once the leader has been silent for an election timeout, it votes again.
        Ticks(node, 10);
        node.Step(new Message { Type = MessageType.Vote, From = 3, To = 1, Term = 5, Index = 10, LogTerm = 5 });
        Assert.Equal(5, node.Term);
        Assert.False(Assert.Single(Messages(node), m => m.Type == MessageType.VoteResponse).Reject);
    }

    [Fact]
    public void A_stale_leader_learns_the_new_term_from_a_rejected_append()
    {
        var leader = Leader(1, Three);
        leader.Step(new Message { Type = MessageType.AppendResponse, From = 2, To = 1, Term = 5 });
        Assert.Equal(Role.Follower, leader.Role);
        Assert.Equal(5, leader.Term);
    }
}
