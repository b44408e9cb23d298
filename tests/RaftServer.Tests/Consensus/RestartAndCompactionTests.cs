using RaftServer.Consensus;
using static RaftServer.Tests.Consensus.Harness;

namespace RaftServer.Tests.Consensus;

/// <summary>Restart from persisted state, the Ready contract, and the compaction hooks.</summary>
public class RestartAndCompactionTests
{
    [Fact]
    public void A_restarted_node_redelivers_committed_entries_after_applied()
    {
        var state = State(2, votedFor: 1, commit: 3, logTerms: [1, 1, 2, 2]) with { Applied = 1 };
        var node = Node(1, [1, 2, 3], state);
        Assert.Equal((2L, 3L, 1L, 4L), (node.Term, node.CommitIndex, node.AppliedIndex, node.LastIndex));
        var ready = Take(node);
        Assert.Equal([2L, 3], ready.CommittedEntries.Select(e => e.Index));
        Assert.Empty(ready.Entries); // already persisted
        Assert.Null(ready.HardState);
        Assert.Equal(3, node.AppliedIndex);
    }

    [Fact]
    public void A_log_can_start_after_a_snapshot()
    {
        var state = new PersistedState
        {
            HardState = new HardState(3, HardState.NoVote, 10),
            SnapshotIndex = 10, SnapshotTerm = 2, Applied = 10,
            Entries = [E(11, 3), E(12, 3)],
        };
        var node = Node(1, [1, 2, 3], state);
        Assert.Equal((11L, 12L, 10L), (node.FirstIndex, node.LastIndex, node.SnapshotIndex));
        Assert.Equal(2, node.TermAt(10));
        Assert.Equal(-1, node.TermAt(9));

        // Consistency check against the snapshot's last entry works.
        node.Step(Append(2, 1, 3, 12, 3, 12, E(13, 3)));
        Assert.Equal(12, node.CommitIndex);
        Assert.Equal([11L, 12], Take(node).CommittedEntries.Select(e => e.Index));
        // A message below our commit index is answered with the commit index.
        node.Step(Append(2, 1, 3, 5, 1, 12));
        Assert.Equal(12, Assert.Single(Messages(node)).Index);
    }

    [Fact]
    public void Compact_forgets_applied_entries_but_keeps_the_last_ones_term()
    {
        var leader = Leader(1, [1]);
        for (int i = 0; i < 5; i++) leader.Propose([(byte)i]);
        Take(leader);
        leader.Compact(4);
        Assert.Equal((5L, 6L), (leader.FirstIndex, leader.LastIndex));
        Assert.Equal(1, leader.TermAt(4));
        Assert.Throws<InvalidOperationException>(() => leader.Compact(7));
    }

    [Fact]
    public void Ready_reports_role_changes_and_is_empty_when_idle()
    {
        var node = Node(1, [1]);
        Assert.False(node.HasReady);
        TickUntilCampaign(node);
        Assert.True(node.HasReady);
        var ready = Take(node);
        Assert.Equal(new SoftState(Role.Leader, 1, 1), ready.SoftState);
        Assert.True(ready.MustSync);
        Assert.False(node.HasReady);
    }

    [Fact]
    public void A_ready_that_only_moves_the_commit_index_needs_no_fsync()
    {
        var node = Node(1, [1, 2, 3]);
        node.Step(Append(2, 1, 1, 0, 0, 0, E(1, 1), E(2, 1)));
        var appended = Take(node);
        Assert.True(appended.MustSync); // a new term and entries
        Assert.Equal(2, appended.Entries.Count);

        node.Step(Append(2, 1, 1, 2, 1, 2)); // the leader's next heartbeat commits both
        var commitOnly = Take(node);
        Assert.Equal(new HardState(1, HardState.NoVote, 2), commitOnly.HardState);
        Assert.Empty(commitOnly.Entries);
        Assert.False(commitOnly.MustSync);
        Assert.Equal([1L, 2], commitOnly.CommittedEntries.Select(e => e.Index));
        Assert.NotEmpty(commitOnly.Messages); // the response goes without waiting for a disk

        node.Step(Append(3, 1, 2, 2, 1, 2)); // a new leader in a new term: the term must be durable
        var newTerm = Take(node);
        Assert.Equal(2, newTerm.HardState!.Value.Term);
        Assert.True(newTerm.MustSync);
    }

    [Fact]
    public void A_leaders_ready_that_commits_its_entry_needs_no_second_fsync()
    {
        var leader = Leader(1, [1, 2, 3]);
        leader.Propose([7]);
        var proposed = Take(leader);
        Assert.True(proposed.MustSync);
        var entry = Assert.Single(proposed.Entries);
        leader.Step(new Message { Type = MessageType.AppendResponse, From = 2, To = 1, Term = leader.Term, Index = entry.Index });
        var committed = Take(leader);
        Assert.Equal(entry.Index, committed.HardState!.Value.Commit);
        Assert.False(committed.MustSync);
        Assert.Equal(entry.Index, Assert.Single(committed.CommittedEntries).Index);
    }

    [Fact]
    public void Members_are_data_and_node_ids_may_be_zero()
    {
        var node = Node(0, [0, 5, 9]);
        Assert.Equal([0, 5, 9], node.Members);
        TickUntilCampaign(node);
        Assert.Equal([5, 9], Messages(node).Select(m => m.To).Order());
    }
}
