using RaftServer.Consensus;
using static RaftServer.Tests.Consensus.Harness;

namespace RaftServer.Tests.Consensus;

/// <summary>Snapshots: the leader sends one when a peer needs compacted entries, the follower
/// installs (or ignores) it, the driver reports the transfer, lost transfers time out.</summary>
public class SnapshotTests
{
    private static readonly int[] Three = [1, 2, 3];

    /// <summary>A node restarted with a snapshot at 10 (term 1) and entries 11..12 (term 1), all committed.</summary>
    private static PersistedState Compacted() => new()
    {
        HardState = new HardState(1, HardState.NoVote, 12),
        SnapshotIndex = 10, SnapshotTerm = 1, Applied = 12,
        Entries = [E(11, 1), E(12, 1)],
    };

    /// <summary>Node 1 becomes leader of term 2 over <see cref="Compacted"/>; node 3 rejects its
    /// first Append (its log is empty), so node 1 must send it the snapshot. Returns the leader
    /// and the messages to node 3 that followed the rejection.</summary>
    private static (RaftNode Leader, List<Message> ToThree) LeaderSendingSnapshot(int snapshotTimeoutTicks = 0)
    {
        var node = new RaftNode(new RaftOptions
        {
            Id = 1, Members = Three, Random = new Random(1), PreVote = false, CheckQuorum = false,
            SnapshotTimeoutTicks = snapshotTimeoutTicks,
        }, Compacted());
        TickUntilCampaign(node);
        node.Step(new Message { Type = MessageType.VoteResponse, From = 2, To = 1, Term = node.Term });
        Assert.Equal(Role.Leader, node.Role);
        var appends = Messages(node).Where(m => m.Type == MessageType.Append).ToList();
        Assert.Equal(12, appends.Single(m => m.To == 3).Index);
        node.Step(new Message { Type = MessageType.AppendResponse, From = 2, To = 1, Term = node.Term, Index = 13 });
        node.Step(new Message
        {
            Type = MessageType.AppendResponse, From = 3, To = 1, Term = node.Term, Index = 12,
            Reject = true, RejectHint = 1, HintTerm = 0,
        });
        return (node, Messages(node).Where(m => m.To == 3).ToList());
    }

    private static Message HeartbeatResponse(RaftNode leader, int from) =>
        new() { Type = MessageType.HeartbeatResponse, From = from, To = leader.Id, Term = leader.Term };

    [Fact]
    public void A_follower_that_lost_its_log_after_acknowledging_entries_is_caught_up_again_by_snapshot()
    {
        // Node 3 acknowledged everything up to 13, then its data directory was wiped: its answer to
        // the next Append says its log is empty. Before, a Match of 13 kept the leader probing at
        // 14 forever; now it starts over from the follower's real end, which is compacted away.
        var node = new RaftNode(new RaftOptions { Id = 1, Members = Three, Random = new Random(1), PreVote = false, CheckQuorum = false }, Compacted());
        TickUntilCampaign(node);
        node.Step(new Message { Type = MessageType.VoteResponse, From = 2, To = 1, Term = node.Term });
        Messages(node);
        node.Step(new Message { Type = MessageType.AppendResponse, From = 3, To = 1, Term = node.Term, Index = 13 });
        Assert.Equal(13, node.Progress.Single(p => p.Id == 3).Match);
        Assert.Equal(ProposeOutcome.Accepted, node.Propose([1]).Outcome);
        Assert.Contains(Messages(node), m => m.To == 3 && m.Type == MessageType.Append && m.Index == 13);
        var commit = node.CommitIndex;

        node.Step(new Message
        {
            Type = MessageType.AppendResponse, From = 3, To = 1, Term = node.Term, Index = 13,
            Reject = true, RejectHint = 1, HintTerm = 0,
        });
        var snapshot = Assert.Single(Messages(node), m => m.To == 3 && m.Type == MessageType.Snapshot);
        Assert.Equal(10, snapshot.Snapshot!.Index);
        Assert.Equal(0, node.Progress.Single(p => p.Id == 3).Match);
        Assert.Equal(commit, node.CommitIndex); // never taken back
    }

    [Fact]
    public void An_idle_leader_learns_from_a_heartbeat_answer_that_a_follower_lost_its_log()
    {
        // Nothing new to replicate, so no Append would ever be rejected: the heartbeat answer must
        // carry the news (a wiped follower restarted while the cluster was idle).
        var node = new RaftNode(new RaftOptions { Id = 1, Members = Three, Random = new Random(1), PreVote = false, CheckQuorum = false }, Compacted());
        TickUntilCampaign(node);
        node.Step(new Message { Type = MessageType.VoteResponse, From = 2, To = 1, Term = node.Term });
        node.Step(new Message { Type = MessageType.AppendResponse, From = 2, To = 1, Term = node.Term, Index = 13 });
        node.Step(new Message { Type = MessageType.AppendResponse, From = 3, To = 1, Term = node.Term, Index = 13 });
        Messages(node);
        Assert.Equal(13, node.Progress.Single(p => p.Id == 3).Match);

        node.Step(new Message { Type = MessageType.HeartbeatResponse, From = 3, To = 1, Term = node.Term, Reject = true, RejectHint = 1 });
        var snapshot = Assert.Single(Messages(node), m => m.To == 3 && m.Type == MessageType.Snapshot);
        Assert.Equal(10, snapshot.Snapshot!.Index);
    }

    [Fact]
    public void A_follower_answers_a_heartbeat_committing_past_its_log_with_where_its_log_ends()
    {
        var follower = new RaftNode(new RaftOptions { Id = 3, Members = Three, Random = new Random(1), PreVote = false, CheckQuorum = false }, PersistedState.Empty);
        follower.Step(new Message { Type = MessageType.Heartbeat, From = 1, To = 3, Term = 2, Commit = 13, Context = 5 });
        var answer = Assert.Single(Messages(follower), m => m.Type == MessageType.HeartbeatResponse);
        Assert.Equal((true, 1L, 5L), (answer.Reject, answer.RejectHint, answer.Context));
        Assert.Equal(0, follower.CommitIndex);

        follower.Step(new Message { Type = MessageType.Heartbeat, From = 1, To = 3, Term = 2, Commit = 0 });
        Assert.False(Assert.Single(Messages(follower), m => m.Type == MessageType.HeartbeatResponse).Reject);
    }

    [Fact]
    public void Leader_sends_the_snapshot_when_the_needed_entry_is_compacted()
    {
        var (leader, toThree) = LeaderSendingSnapshot();
        var snapshot = Assert.Single(toThree, m => m.Type == MessageType.Snapshot);
        Assert.DoesNotContain(toThree, m => m.Type == MessageType.Append && m.Entries.Count > 0);
        Assert.Equal(new SnapshotMetadata(10, 1, Three), snapshot.Snapshot!);
        Assert.Equal(Three, snapshot.Snapshot!.Members);
        Assert.Equal((10L, 1L, 2L), (snapshot.Index, snapshot.LogTerm, snapshot.Term));
        Assert.Null(snapshot.SnapshotData);
        Assert.Equal(10, leader.Progress.Single(p => p.Id == 3).SendingSnapshot);
    }

    [Fact]
    public void No_appends_go_to_a_peer_while_its_snapshot_is_in_flight()
    {
        var (leader, _) = LeaderSendingSnapshot();
        leader.Propose([7]);
        leader.Step(HeartbeatResponse(leader, 3));
        leader.Tick();
        var toThree = Messages(leader).Where(m => m.To == 3).ToList();
        Assert.DoesNotContain(toThree, m => m.Type is MessageType.Snapshot || (m.Type == MessageType.Append && m.Entries.Count > 0));
        Assert.Contains(toThree, m => m.Type == MessageType.Heartbeat);
    }

    [Fact]
    public void The_peers_acknowledgement_ends_the_snapshot_and_replication_continues_after_it()
    {
        var (leader, _) = LeaderSendingSnapshot();
        leader.Step(new Message { Type = MessageType.AppendResponse, From = 3, To = 1, Term = leader.Term, Index = 10 });
        var append = Assert.Single(Messages(leader), m => m.To == 3 && m.Type == MessageType.Append);
        Assert.Equal((10L, 1L), (append.Index, append.LogTerm));
        Assert.Equal([11L, 12, 13], append.Entries.Select(e => e.Index));
        var pr = leader.Progress.Single(p => p.Id == 3);
        Assert.Equal((10L, 0L), (pr.Match, pr.SendingSnapshot));
        // A late success report changes nothing.
        leader.ReportSnapshot(3, success: true);
        Assert.Equal(10, leader.Progress.Single(p => p.Id == 3).Match);
    }

    [Fact]
    public void A_successful_transfer_report_probes_just_after_the_snapshot()
    {
        var (leader, _) = LeaderSendingSnapshot();
        leader.ReportSnapshot(3, success: true);
        Assert.Equal(11, leader.Progress.Single(p => p.Id == 3).Next);
        Assert.DoesNotContain(Messages(leader), m => m.To == 3); // waits for a sign of life
        leader.Step(HeartbeatResponse(leader, 3));
        var probe = Assert.Single(Messages(leader), m => m.To == 3);
        Assert.Equal((MessageType.Append, 10L, 1L), (probe.Type, probe.Index, probe.LogTerm));
    }

    [Fact]
    public void A_failed_transfer_report_sends_the_snapshot_again_after_the_next_heartbeat_answer()
    {
        var (leader, _) = LeaderSendingSnapshot();
        leader.ReportSnapshot(3, success: false);
        Assert.Equal(0, leader.Progress.Single(p => p.Id == 3).SendingSnapshot);
        Assert.DoesNotContain(Messages(leader), m => m.To == 3);
        leader.Step(HeartbeatResponse(leader, 3));
        Assert.Equal(MessageType.Snapshot, Assert.Single(Messages(leader), m => m.To == 3).Type);
    }

    [Fact]
    public void A_transfer_nobody_reports_on_times_out_and_is_retried()
    {
        var (leader, _) = LeaderSendingSnapshot(snapshotTimeoutTicks: 30);
        Ticks(leader, 29);
        leader.Step(HeartbeatResponse(leader, 3));
        Assert.DoesNotContain(Messages(leader), m => m.To == 3 && m.Type == MessageType.Snapshot);
        leader.Tick();
        Assert.Equal(0, leader.Progress.Single(p => p.Id == 3).SendingSnapshot);
        leader.Step(HeartbeatResponse(leader, 3));
        Assert.Single(Messages(leader), m => m.To == 3 && m.Type == MessageType.Snapshot);
    }

    [Fact]
    public void The_default_snapshot_timeout_is_five_election_timeouts()
    {
        var (leader, _) = LeaderSendingSnapshot();
        Ticks(leader, 49);
        Assert.Equal(10, leader.Progress.Single(p => p.Id == 3).SendingSnapshot);
        leader.Tick();
        Assert.Equal(0, leader.Progress.Single(p => p.Id == 3).SendingSnapshot);
    }

    [Fact]
    public void A_rejection_of_an_older_append_does_not_cancel_the_snapshot()
    {
        var (leader, _) = LeaderSendingSnapshot();
        leader.Step(new Message { Type = MessageType.AppendResponse, From = 3, To = 1, Term = leader.Term, Index = 12, Reject = true, RejectHint = 1 });
        Assert.Equal(10, leader.Progress.Single(p => p.Id == 3).SendingSnapshot);
        Assert.DoesNotContain(Messages(leader), m => m.To == 3 && m.Type is MessageType.Append or MessageType.Snapshot);
    }

    [Fact]
    public void Reports_are_ignored_when_not_leader_or_no_snapshot_is_in_flight()
    {
        var follower = Node(2, Three);
        follower.ReportSnapshot(1, false);
        Assert.False(follower.HasReady);
        var leader = Leader(1, Three);
        leader.ReportSnapshot(2, false);
        leader.ReportSnapshot(9, true);
        Assert.Equal(leader.LastIndex + 1, leader.Progress.Single(p => p.Id == 2).Next);
    }

    [Fact]
    public void Compaction_on_a_live_leader_sends_the_snapshot_to_a_lagging_peer()
    {
        var leader = Leader(1, Three);
        // Node 3 stops answering; node 2 acknowledges everything.
        for (int i = 0; i < 5; i++) leader.Propose([(byte)i]);
        Take(leader);
        leader.Step(new Message { Type = MessageType.AppendResponse, From = 2, To = 1, Term = 1, Index = leader.LastIndex });
        Take(leader);
        Assert.Equal(6, leader.AppliedIndex);
        Assert.Equal(6, leader.LogEntryCount);
        Assert.Equal(5, leader.LogBytes);
        leader.Compact(6);
        Assert.Equal((0L, 0L), (leader.LogEntryCount, leader.LogBytes));
        Assert.Equal(new SnapshotMetadata(6, 1, Three), leader.CurrentSnapshot);

        // Node 3 had only the no-op; its rejection now leads to the snapshot.
        leader.Step(new Message { Type = MessageType.AppendResponse, From = 3, To = 1, Term = 1, Index = 6, Reject = true, RejectHint = 2 });
        var snapshot = Assert.Single(Messages(leader), m => m.To == 3);
        Assert.Equal((MessageType.Snapshot, 6L), (snapshot.Type, snapshot.Snapshot!.Index));
    }

    // ---- follower side --------------------------------------------------------------------------

    private static Message Snapshot(int from, int to, long term, long index, long snapshotTerm, object? data = null) => new()
    {
        Type = MessageType.Snapshot, From = from, To = to, Term = term, Index = index, LogTerm = snapshotTerm,
        Snapshot = new SnapshotMetadata(index, snapshotTerm, Three), SnapshotData = data,
    };

    [Fact]
    public void A_follower_installs_a_newer_snapshot_discarding_its_conflicting_log()
    {
        var follower = Node(2, Three, State(1, commit: 1, logTerms: [1, 1, 2, 2]));
        Take(follower);
        object data = new();
        follower.Step(Snapshot(1, 2, 3, 10, 3, data));
        Assert.Equal((10L, 10L, 11L, 10L), (follower.CommitIndex, follower.LastIndex, follower.FirstIndex, follower.SnapshotIndex));
        Assert.Equal(1, follower.LeaderId);

        var ready = follower.GetReady();
        Assert.Equal(new SnapshotMetadata(10, 3, Three), ready.Snapshot);
        Assert.Same(data, ready.SnapshotData);
        Assert.True(ready.MustSync);
        Assert.Empty(ready.Entries);
        Assert.Empty(ready.CommittedEntries);
        Assert.Equal(new HardState(3, HardState.NoVote, 10), ready.HardState);
        var response = Assert.Single(ready.Messages);
        Assert.Equal((MessageType.AppendResponse, 10L, false), (response.Type, response.Index, response.Reject));
        follower.Advance(ready);
        Assert.Equal(10, follower.AppliedIndex);
        Assert.False(follower.HasReady);

        // The log continues after the snapshot.
        follower.Step(Append(1, 2, 3, 10, 3, 11, E(11, 3), E(12, 3)));
        ready = Take(follower);
        Assert.Equal([11L, 12], ready.Entries.Select(e => e.Index));
        Assert.Equal([11L], ready.CommittedEntries.Select(e => e.Index));
        Assert.Equal(11, follower.AppliedIndex);
    }

    [Fact]
    public void A_follower_whose_log_holds_the_snapshots_last_entry_keeps_its_log_and_commits()
    {
        var follower = Node(2, Three, State(1, commit: 1, logTerms: [1, 1, 1, 1, 1]));
        Take(follower);
        follower.Step(Snapshot(1, 2, 1, 3, 1));
        var ready = Take(follower);
        Assert.Null(ready.Snapshot);
        Assert.Equal([2L, 3], ready.CommittedEntries.Select(e => e.Index));
        Assert.Equal((3L, 5L, 1L), (follower.CommitIndex, follower.LastIndex, follower.FirstIndex));
        Assert.Equal(3, Assert.Single(ready.Messages).Index);
    }

    [Fact]
    public void A_follower_replaces_its_log_when_the_snapshots_last_entry_has_another_term()
    {
        var follower = Node(2, Three, State(2, commit: 1, logTerms: [1, 1, 2, 2, 2]));
        Take(follower);
        follower.Step(Snapshot(1, 2, 3, 3, 3));
        var ready = Take(follower);
        Assert.NotNull(ready.Snapshot);
        Assert.Equal((3L, 3L, 3L), (follower.LastIndex, follower.LastTerm, follower.AppliedIndex));
        Assert.Equal(-1, follower.TermAt(4));
    }

    [Fact]
    public void A_follower_ignores_a_snapshot_not_newer_than_its_commit_index()
    {
        var follower = Node(2, Three, State(1, commit: 4, logTerms: [1, 1, 1, 1, 1]));
        Take(follower);
        follower.Step(Snapshot(1, 2, 1, 3, 1));
        var ready = Take(follower);
        Assert.Null(ready.Snapshot);
        Assert.Equal((4L, 5L, 4L), (follower.CommitIndex, follower.LastIndex, follower.AppliedIndex));
        var response = Assert.Single(ready.Messages);
        Assert.Equal((MessageType.AppendResponse, 4L, false), (response.Type, response.Index, response.Reject));
    }

    [Fact]
    public void A_snapshot_from_a_stale_leader_is_refused_with_the_current_term()
    {
        var follower = Node(2, Three, State(5, commit: 1, logTerms: [1]));
        follower.Step(Snapshot(1, 2, 4, 10, 4));
        var ready = Take(follower);
        Assert.Null(ready.Snapshot);
        Assert.Equal(1, follower.LastIndex);
        var response = Assert.Single(ready.Messages);
        Assert.Equal((MessageType.AppendResponse, 5L), (response.Type, response.Term));
    }

    [Fact]
    public void A_candidate_of_the_same_term_follows_the_snapshots_sender_and_installs_it()
    {
        var node = Node(2, Three);
        TickUntilCampaign(node);
        Assert.Equal(Role.Candidate, node.Role);
        Take(node);
        node.Step(Snapshot(1, 2, node.Term, 7, 1));
        Assert.Equal((Role.Follower, 1), (node.Role, node.LeaderId));
        Assert.Equal(7, Take(node).Snapshot!.Index);
    }

    [Fact]
    public void The_applied_index_never_goes_backwards()
    {
        var follower = Node(2, Three, State(1, commit: 0, logTerms: [1]));
        follower.Step(Snapshot(1, 2, 2, 8, 2));
        Take(follower);
        Assert.Equal(8, follower.AppliedIndex);
        // An older snapshot, and one at the same index, change nothing.
        follower.Step(Snapshot(1, 2, 2, 5, 1));
        follower.Step(Snapshot(1, 2, 2, 8, 2));
        var ready = Take(follower);
        Assert.Null(ready.Snapshot);
        Assert.Equal(8, follower.AppliedIndex);
        Assert.All(ready.Messages, m => Assert.Equal(8, m.Index));
        // A newer one moves it forward.
        follower.Step(Snapshot(1, 2, 2, 12, 2));
        Take(follower);
        Assert.Equal(12, follower.AppliedIndex);
    }

    [Fact]
    public void A_node_restarted_from_a_snapshot_redelivers_only_what_follows_applied()
    {
        var state = new PersistedState
        {
            HardState = new HardState(3, HardState.NoVote, 13),
            SnapshotIndex = 10, SnapshotTerm = 2, Applied = 10,
            Entries = [E(11, 3), E(12, 3), E(13, 3), E(14, 3)],
        };
        var node = Node(2, Three, state);
        Assert.Equal(10, node.AppliedIndex);
        Assert.Equal([11L, 12, 13], Take(node).CommittedEntries.Select(e => e.Index));
        Assert.Equal(4, node.LogEntryCount);
        Assert.Equal(4, node.LogBytes);
    }

    [Fact]
    public void A_read_index_works_across_a_snapshot_install()
    {
        var follower = Node(2, Three);
        follower.Step(Snapshot(1, 2, 2, 8, 2));
        Take(follower);
        Assert.True(follower.ReadIndex(42));
        var request = Assert.Single(Messages(follower));
        Assert.Equal((MessageType.ReadIndex, 1), (request.Type, request.To));
        follower.Step(new Message { Type = MessageType.ReadIndexResponse, From = 1, To = 2, Term = 2, Context = 42, Index = 8 });
        Assert.Equal(new ReadState(42, 8), Assert.Single(Take(follower).ReadStates));
        Assert.True(follower.AppliedIndex >= 8);
    }
}
