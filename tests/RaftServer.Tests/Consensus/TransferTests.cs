using RaftServer.Consensus;
using static RaftServer.Tests.Consensus.Harness;

namespace RaftServer.Tests.Consensus;

/// <summary>Leadership transfer (thesis §3.10).</summary>
public class TransferTests
{
    [Fact]
    public void Transfer_to_an_up_to_date_follower_makes_it_leader()
    {
        var cluster = new TestCluster(3, configure: o => o with { PreVote = true, CheckQuorum = true });
        cluster.Campaign(0);
        cluster.Settle();
        Assert.True(cluster[0].TransferLeadership(2));
        cluster.Settle();
        Assert.Equal(2, cluster.Leader());
        Assert.Equal(2, cluster[0].LeaderId);
        Assert.Equal(2, cluster[2].Term);
    }

    [Fact]
    public void Transfer_to_a_lagging_follower_first_brings_it_up_to_date()
    {
        var cluster = new TestCluster(3, configure: o => o with { PreVote = true, CheckQuorum = true });
        cluster.Campaign(0);
        cluster.Isolate(1);
        for (int i = 0; i < 5; i++) cluster[0].Propose([1]);
        cluster.Settle();
        cluster.Heal();
        Assert.True(cluster[0].TransferLeadership(1));
        cluster.TickAll(3); // the next heartbeat answer resumes replication to the lagging node
        Assert.Equal(1, cluster.Leader());
        Assert.Equal(7, cluster[1].LastIndex); // 1 no-op + 5 commands it lacked + its own no-op
        Assert.Equal(cluster[1].Term, cluster[1].TermAt(7));
    }

    [Fact]
    public void Transfer_without_a_target_picks_the_most_up_to_date_peer()
    {
        var leader = Leader(1, [1, 2, 3]);
        leader.Propose([1]);
        Take(leader);
        leader.Step(new Message { Type = MessageType.AppendResponse, From = 3, To = 1, Term = 1, Index = 2 });
        Take(leader);
        Assert.True(leader.TransferLeadership(null));
        Assert.Equal(3, leader.LeadTransferee);
        var timeoutNow = Assert.Single(Messages(leader), m => m.Type == MessageType.TimeoutNow);
        Assert.Equal(3, timeoutNow.To);
    }

    [Fact]
    public void Proposals_are_refused_during_a_transfer_and_taken_again_after_it_is_abandoned()
    {
        var leader = Leader(1, [1, 2, 3], checkQuorum: false);
        leader.Propose([1]);
        Take(leader);
        Assert.True(leader.TransferLeadership(2)); // 2 lags: it gets an Append, no TimeoutNow yet
        Assert.Equal(ProposeOutcome.TransferInProgress, leader.Propose([2]).Outcome);

        Ticks(leader, 10); // no answer for an election timeout: give up
        Assert.Equal(SoftState.NoLeader, leader.LeadTransferee);
        Assert.Equal(Role.Leader, leader.Role);
        Assert.Equal(ProposeOutcome.Accepted, leader.Propose([3]).Outcome);
    }

    [Fact]
    public void Transfer_is_refused_by_a_non_leader_and_for_unknown_targets()
    {
        Assert.False(Node(1, [1, 2, 3]).TransferLeadership(2));
        var leader = Leader(1, [1, 2, 3]);
        Assert.False(leader.TransferLeadership(9));
        Assert.False(leader.TransferLeadership(1));
    }

    [Fact]
    public void TimeoutNow_starts_an_election_that_peers_in_the_leader_lease_still_answer()
    {
        var node = Node(2, [1, 2, 3], preVote: true, checkQuorum: true);
        node.Step(new Message { Type = MessageType.Heartbeat, From = 1, To = 2, Term = 1 });
        node.Step(new Message { Type = MessageType.TimeoutNow, From = 1, To = 2, Term = 1 });
        Assert.Equal(Role.Candidate, node.Role); // no pre-vote
        var vote = Messages(node).First(m => m.Type == MessageType.Vote);
        Assert.Equal(RaftNode.TransferVoteContext, vote.Context);

        var peer = Node(3, [1, 2, 3], preVote: true, checkQuorum: true);
        peer.Step(new Message { Type = MessageType.Heartbeat, From = 1, To = 3, Term = 1 });
        peer.Step(vote with { To = 3 });
        Assert.False(Assert.Single(Messages(peer), m => m.Type == MessageType.VoteResponse).Reject);
    }
}
