using RaftServer.Consensus;
using static RaftServer.Tests.Consensus.Harness;

namespace RaftServer.Tests.Consensus;

/// <summary>Linearizable reads by read index (thesis §6.4).</summary>
public class ReadIndexTests
{
    private static readonly int[] Three = [1, 2, 3];

    private static Message HeartbeatAck(int from, RaftNode leader, long context) =>
        new() { Type = MessageType.HeartbeatResponse, From = from, To = leader.Id, Term = leader.Term, Context = context };

    [Fact]
    public void Leader_answers_after_a_majority_confirms_its_leadership()
    {
        var leader = Leader(1, Three);
        Assert.True(leader.ReadIndex(100));
        var ready = Take(leader);
        Assert.Empty(ready.ReadStates);
        var heartbeats = ready.Messages.Where(m => m.Type == MessageType.Heartbeat).ToList();
        Assert.Equal(2, heartbeats.Count);
        long round = heartbeats[0].Context;

        leader.Step(HeartbeatAck(2, leader, round));
        Assert.Equal([new ReadState(100, 1)], Take(leader).ReadStates);
    }

    [Fact]
    public void Reads_of_one_turn_share_one_heartbeat_round()
    {
        var leader = Leader(1, Three);
        for (int id = 1; id <= 5; id++) leader.ReadIndex(id);
        var heartbeats = Messages(leader).Where(m => m.Type == MessageType.Heartbeat).ToList();
        Assert.Equal(2, heartbeats.Count);
        leader.Step(HeartbeatAck(3, leader, heartbeats[0].Context));
        Assert.Equal([1L, 2, 3, 4, 5], Take(leader).ReadStates.Select(r => r.RequestId));
    }

    [Fact]
    public void An_answer_to_an_earlier_round_confirms_nothing_later()
    {
        var leader = Leader(1, Three);
        leader.ReadIndex(1);
        long first = Messages(leader).First(m => m.Type == MessageType.Heartbeat).Context;
        leader.ReadIndex(2);
        long second = Messages(leader).First(m => m.Type == MessageType.Heartbeat).Context;
        Assert.True(second > first);

        leader.Step(HeartbeatAck(2, leader, first));
        Assert.Equal([1L], Take(leader).ReadStates.Select(r => r.RequestId));
        leader.Step(HeartbeatAck(2, leader, second));
        Assert.Equal([2L], Take(leader).ReadStates.Select(r => r.RequestId));
    }

    [Fact]
    public void Every_heartbeat_round_has_a_context_of_its_own_and_a_later_one_confirms_earlier_reads()
    {
        // The host matches each answer to its heartbeat by context (Observability/PeerProbe.cs).
        var leader = Leader(1, Three);
        Take(leader);
        Ticks(leader, 20);
        var contexts = Messages(leader).Where(m => m.Type == MessageType.Heartbeat && m.To == 2).Select(m => m.Context).ToList();
        Assert.True(contexts.Count >= 3, $"{contexts.Count} heartbeats in 20 ticks");
        Assert.Equal(contexts.Count, contexts.Distinct().Count());

        leader.ReadIndex(7);
        var round = Messages(leader).First(m => m.Type == MessageType.Heartbeat).Context;
        Ticks(leader, 3); // heartbeat rounds of the timer (one a tick here), after the read's own
        var later = Messages(leader).Where(m => m.Type == MessageType.Heartbeat && m.To == 2).Max(m => m.Context);
        Assert.True(later > round);
        leader.Step(HeartbeatAck(2, leader, later));
        Assert.Equal([7L], Take(leader).ReadStates.Select(r => r.RequestId));
    }

    [Fact]
    public void The_read_index_is_the_commit_index_when_the_read_arrived()
    {
        var leader = Leader(1, Three);
        leader.Propose([1]);
        Take(leader);
        leader.Step(new Message { Type = MessageType.AppendResponse, From = 2, To = 1, Term = 1, Index = 2 });
        leader.ReadIndex(9);
        long round = Messages(leader).First(m => m.Type == MessageType.Heartbeat).Context;
        leader.Propose([2]); // a later write does not move this read's index
        leader.Step(HeartbeatAck(3, leader, round));
        Assert.Equal([new ReadState(9, 2)], Take(leader).ReadStates);
    }

    [Fact]
    public void A_new_leader_defers_reads_until_it_commits_an_entry_of_its_term()
    {
        var leader = Node(1, Three, State(1, logTerms: [1, 1]));
        TickUntilCampaign(leader);
        leader.Step(new Message { Type = MessageType.VoteResponse, From = 2, To = 1, Term = 2 });
        Take(leader);
        Assert.True(leader.ReadIndex(5));
        Assert.DoesNotContain(Messages(leader), m => m.Type == MessageType.Heartbeat && m.Context > 0);

        leader.Step(new Message { Type = MessageType.AppendResponse, From = 2, To = 1, Term = 2, Index = 3 });
        var heartbeat = Messages(leader).First(m => m.Type == MessageType.Heartbeat && m.Context > 0);
        leader.Step(HeartbeatAck(2, leader, heartbeat.Context));
        Assert.Equal([new ReadState(5, 3)], Take(leader).ReadStates);
    }

    [Fact]
    public void A_follower_asks_the_leader_and_relays_the_answer()
    {
        var cluster = new TestCluster(3);
        cluster.Campaign(0);
        cluster[0].Propose(TestCluster.Bytes("x"));
        cluster.Settle();
        Assert.True(cluster[1].ReadIndex(77));
        cluster.Settle();
        Assert.Equal([new ReadState(77, 2)], cluster.Reads[1]);
    }

    [Fact]
    public void A_read_without_a_known_leader_cannot_start()
    {
        var node = Node(1, Three);
        Assert.False(node.ReadIndex(1));
    }

    [Fact]
    public void Pending_reads_fail_when_leadership_is_lost()
    {
        var leader = Leader(1, Three);
        leader.ReadIndex(1);
        Take(leader);
        leader.Step(new Message { Type = MessageType.Vote, From = 2, To = 1, Term = 9, Index = 10, LogTerm = 9 });
        Assert.Equal([new ReadState(1, -1)], Take(leader).ReadStates);
    }

    [Fact]
    public void A_follower_read_fails_fast_when_its_leader_changes_or_refuses()
    {
        var node = Node(2, Three);
        node.Step(new Message { Type = MessageType.Heartbeat, From = 1, To = 2, Term = 1 });
        Take(node);
        Assert.True(node.ReadIndex(1));
        Assert.Equal(MessageType.ReadIndex, Assert.Single(Messages(node)).Type);
        node.Step(new Message { Type = MessageType.Heartbeat, From = 3, To = 2, Term = 2 });
        Assert.Equal([new ReadState(1, -1)], Take(node).ReadStates);

        Assert.True(node.ReadIndex(2));
        Take(node);
        node.Step(new Message { Type = MessageType.ReadIndexResponse, From = 3, To = 2, Term = 2, Context = 2, Index = -1, Reject = true });
        Assert.Equal([new ReadState(2, -1)], Take(node).ReadStates);
    }

    [Fact]
    public void A_read_that_is_never_answered_times_out()
    {
        var node = Node(2, Three);
        node.Step(new Message { Type = MessageType.Heartbeat, From = 1, To = 2, Term = 1 });
        node.ReadIndex(1);
        Take(node);
        for (int i = 0; i < 20; i++)
        {
            node.Tick();
            node.Step(new Message { Type = MessageType.Heartbeat, From = 1, To = 2, Term = 1 });
        }
        Assert.Equal([new ReadState(1, -1)], Take(node).ReadStates);
    }

    [Fact]
    public void A_non_leader_refuses_a_forwarded_read()
    {
        var node = Node(2, Three);
        node.Step(new Message { Type = MessageType.ReadIndex, From = 3, To = 2, Term = 0, Context = 4 });
        var reply = Assert.Single(Messages(node));
        Assert.Equal((MessageType.ReadIndexResponse, true, -1L, 4L), (reply.Type, reply.Reject, reply.Index, reply.Context));
    }

    [Fact]
    public void A_deposed_leader_cut_off_from_the_cluster_never_answers_a_read()
    {
        var cluster = new TestCluster(5, configure: o => o with { PreVote = true, CheckQuorum = true });
        cluster.Campaign(0);
        cluster[0].Propose(TestCluster.Bytes("x=1"));
        cluster.Settle();
        cluster.Isolate(0);
        for (int i = 0; i < 100 && cluster.Nodes.Values.All(n => n.Id == 0 || n.Role != Role.Leader); i++) cluster.TickAll();
        int newLeader = cluster.Nodes.Values.Single(n => n.Id != 0 && n.Role == Role.Leader).Id;
        cluster[newLeader].Propose(TestCluster.Bytes("x=2"));
        cluster.Settle();

        // The old leader may still believe it leads; its read must fail, not return index 2.
        if (cluster[0].ReadIndex(1))
        {
            cluster.TickAll(30);
            Assert.Equal([new ReadState(1, -1)], cluster.Reads[0]);
        }
        Assert.NotEqual(Role.Leader, cluster[0].Role);
    }

    [Fact]
    public void Deferred_reads_fail_too_when_leadership_is_lost()
    {
        var leader = Node(1, Three, State(1, logTerms: [1]));
        TickUntilCampaign(leader);
        leader.Step(new Message { Type = MessageType.VoteResponse, From = 2, To = 1, Term = 2 });
        leader.ReadIndex(3); // deferred: nothing of term 2 is committed yet
        Take(leader);
        leader.Step(Append(2, 1, 3, 0, 0, 0));
        Assert.Equal([new ReadState(3, -1)], Take(leader).ReadStates);
    }
}
