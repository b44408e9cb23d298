using RaftServer.Consensus;
using static RaftServer.Tests.Consensus.Harness;

namespace RaftServer.Tests.Consensus;

/// <summary>Membership change in the core (dissertation §4): configurations as log entries,
/// learners, one change at a time, and a leader that removes itself.</summary>
public sealed class MembershipTests
{
    private static ConfigMember Voter(int id) => new(id, MemberRole.Voter, "10.0.0." + id, 5000 + id);
    private static ConfigMember Learner(int id) => new(id, MemberRole.Learner, "10.0.0." + id, 5000 + id);
    private static Configuration Config(params ConfigMember[] members) => new(members);
    private static readonly Configuration ThreeVoters = Config(Voter(0), Voter(1), Voter(2));

    /// <summary>Nodes 0-2 bootstrap a cluster of voters 0-2; any other node starts knowing no configuration (it joins).</summary>
    private static TestCluster Cluster(int size, bool preVote = true) => new(size, configure: o => o with
    {
        Bootstrap = o.Id <= 2 ? ThreeVoters : Configuration.Empty,
        PreVote = preVote,
    });

    private static int ElectAndSettle(TestCluster c)
    {
        c.Campaign(0);
        var leader = c.Leader() ?? throw new InvalidOperationException("no leader");
        c.TickAll(2); // acknowledgements flow, the no-op commits
        return leader;
    }

    private static long Change(TestCluster c, int leader, Configuration next)
    {
        var r = c[leader].ProposeConfiguration(next);
        Assert.Equal(ProposeOutcome.Accepted, r.Outcome);
        c.Settle();
        return r.Index;
    }

    [Fact]
    public void A_configuration_round_trips_and_only_single_server_changes_are_changes()
    {
        var config = Config(Voter(2), Learner(7), Voter(1));
        Assert.Equal(config, Configuration.Decode(config.Encode()));
        Assert.Equal([1, 2, 7], config.Ids);
        Assert.Equal([1, 2], config.VoterIds);
        Assert.Equal(2, config.Quorum);

        Assert.Equal(new ConfigChange(ChangeKind.AddLearner, 3), Config(Voter(0), Voter(1), Voter(2), Learner(3)).ChangeFrom(ThreeVoters));
        Assert.Equal(new ConfigChange(ChangeKind.AddVoter, 3), Config(Voter(0), Voter(1), Voter(2), Voter(3)).ChangeFrom(ThreeVoters));
        Assert.Equal(new ConfigChange(ChangeKind.Promote, 3), Config(Voter(0), Voter(1), Voter(2), Voter(3)).ChangeFrom(Config(Voter(0), Voter(1), Voter(2), Learner(3))));
        Assert.Equal(new ConfigChange(ChangeKind.Remove, 2), new Configuration([Voter(0), Voter(1)], removed: [2]).ChangeFrom(ThreeVoters));
        Assert.Null(Config(Voter(0), Voter(1)).ChangeFrom(ThreeVoters));                               // a removal must remember the id
        Assert.Equal(ThreeVoters.With(new ConfigChange(ChangeKind.Remove, 2)), new Configuration([Voter(0), Voter(1)], removed: [2]));
        Assert.Throws<ArgumentException>(() => new Configuration([Voter(0), Voter(2)], removed: [2]));       // a removed id never returns
        var withRemoved = new Configuration([Voter(0), Learner(5)], removed: [1, 2]);
        Assert.Equal(withRemoved, Configuration.Decode(withRemoved.Encode()));
        Assert.Null(ThreeVoters.ChangeFrom(ThreeVoters));                                              // nothing
        Assert.Null(Config(Voter(0), Voter(3), Voter(4)).ChangeFrom(ThreeVoters));                     // two at once
        Assert.Null(Config(Voter(0), Voter(1), Voter(2) with { Port = 1 }).ChangeFrom(ThreeVoters));   // a member moved: replace it
        Assert.Equal(new ConfigChange(ChangeKind.AddLearner, 3),                                       // an address filled in is no move
            Config(Voter(0), Voter(1), Voter(2), Learner(3)).ChangeFrom(Config(Voter(0), Voter(1), Voter(2) with { Host = "", Port = 0 })));
        Assert.Null(Config(Voter(0), Voter(1), Learner(2)).ChangeFrom(ThreeVoters));                   // demotion: remove instead
        Assert.Throws<InvalidDataException>(() => Configuration.Decode([1, 5, 0]));                    // ends inside a member
        Assert.Throws<ArgumentException>(() => Config(Voter(1), Learner(1)));
    }

    [Fact]
    public void A_node_that_knows_no_configuration_never_campaigns_and_learns_it_from_the_leader()
    {
        var c = Cluster(4);
        var leader = ElectAndSettle(c);
        for (var i = 0; i < 100; i++) c[3].Tick();
        Assert.Equal(Role.Follower, c[3].Role);
        Assert.Equal(0, c[3].Configuration.Count);

        Change(c, leader, Config(Voter(0), Voter(1), Voter(2), Learner(3)));
        c.TickAll(2);

        Assert.Equal(c[leader].LastIndex, c[3].LastIndex);
        Assert.Equal(MemberRole.Learner, c[3].Configuration.Find(3)!.Role);
        Assert.False(c[3].IsVoter);
    }

    [Fact]
    public void A_learner_never_counts_for_commit_and_never_campaigns()
    {
        var c = Cluster(4);
        var leader = ElectAndSettle(c);
        Change(c, leader, Config(Voter(0), Voter(1), Voter(2), Learner(3)));
        c.TickAll(2);

        // The leader and the learner alone: the learner holds every entry, nothing commits.
        foreach (var v in new[] { 0, 1, 2 }.Where(v => v != leader)) c.Isolate(v);
        var commit = c[leader].CommitIndex;
        var r = c[leader].Propose(TestCluster.Bytes("x"));
        c.Settle();
        Assert.Equal(r.Index, c[3].LastIndex);
        Assert.Equal(commit, c[leader].CommitIndex);

        // Cut off from everyone for long, the learner stays a follower.
        c.Heal();
        c.Isolate(3);
        for (var i = 0; i < 200; i++) c[3].Tick();
        Assert.Equal(Role.Follower, c[3].Role);
        Assert.DoesNotContain(c.InFlight, m => m.From == 3 && m.Type is MessageType.Vote or MessageType.PreVote);
    }

    [Fact]
    public void A_learners_vote_does_not_count()
    {
        var c = Cluster(4, preVote: false);
        var leader = ElectAndSettle(c);
        Change(c, leader, Config(Voter(0), Voter(1), Voter(2), Learner(3)));
        c.TickAll(2);
        var candidate = new[] { 0, 1, 2 }.First(i => i != leader);
        var node = c[candidate];
        for (var i = 0; i < 100 && node.Role != Role.Candidate; i++) node.Tick();
        Assert.Equal(Role.Candidate, node.Role);
        // Its own vote and the learner's: not a majority of three voters.
        node.Step(new Message { Type = MessageType.VoteResponse, From = 3, To = candidate, Term = node.Term });
        Assert.Equal(Role.Candidate, node.Role);
        var voter = new[] { 0, 1, 2 }.First(i => i != candidate);
        node.Step(new Message { Type = MessageType.VoteResponse, From = voter, To = candidate, Term = node.Term });
        Assert.Equal(Role.Leader, node.Role);
    }

    [Fact]
    public void A_configuration_is_in_effect_as_soon_as_appended_and_is_undone_with_its_entry()
    {
        // Node 1 follows node 0, which appends a configuration adding learner 3 and is then deposed
        // before anyone else has it: node 2's log wins and node 1 returns to three voters.
        var follower = Node(1, [0, 1, 2], checkQuorum: false);
        var leader0 = Append(0, 1, 1, 0, 0, 0, Entry.NoOp(1, 1), new Entry(2, 1, EntryKind.Configuration, Config(Voter(0), Voter(1), Voter(2), Learner(3)).Encode()));
        follower.Step(leader0);
        Assert.Equal(4, follower.Configuration.Count);
        Assert.Equal(2, follower.ConfigurationIndex);
        Assert.False(follower.ConfigurationCommitted);
        Assert.Equal(4, Take(follower).Configuration!.Count);

        follower.Step(Append(2, 1, 2, 1, 1, 0, Entry.NoOp(2, 2)));
        Assert.Equal(Configuration.FromVoters([0, 1, 2]), follower.Configuration);
        Assert.Equal(0, follower.ConfigurationIndex);
        Assert.Equal(3, Take(follower).Configuration!.Count);
    }

    [Fact]
    public void A_leader_makes_one_change_at_a_time_and_none_before_it_committed_an_entry_of_its_term()
    {
        var c = Cluster(5);
        c.Campaign(0);
        var leader = c.Leader()!.Value;
        // Elected, its no-op not yet acknowledged by anyone: an earlier leader's change may still be in its log.
        var fresh = Node(0, [0, 1, 2]);
        TickUntilCampaign(fresh);
        fresh.Step(new Message { Type = MessageType.VoteResponse, From = 1, To = 0, Term = fresh.Term });
        Assert.Equal(Role.Leader, fresh.Role);
        Assert.Equal(ProposeOutcome.LeaderNotReady, fresh.ProposeConfiguration(Config(Voter(0), Voter(1), Voter(2), Learner(3))).Outcome);

        c.TickAll(2);
        var first = c[leader].ProposeConfiguration(Config(Voter(0), Voter(1), Voter(2), Learner(3)));
        Assert.Equal(ProposeOutcome.Accepted, first.Outcome);
        Assert.Equal(ProposeOutcome.ConfigChangeInProgress, c[leader].ProposeConfiguration(Config(Voter(0), Voter(1), Voter(2), Learner(3), Learner(4))).Outcome);
        c.Settle();
        Assert.True(c[leader].ConfigurationCommitted);
        Assert.Equal(ProposeOutcome.InvalidChange, c[leader].ProposeConfiguration(new Configuration([Voter(0), Voter(1)], removed: [2, 3])).Outcome); // two removals at once
        Assert.Equal(ProposeOutcome.Accepted, c[leader].ProposeConfiguration(Config(Voter(0), Voter(1), Voter(2), Learner(3), Learner(4))).Outcome);
        Assert.Throws<ArgumentException>(() => c[leader].Propose([1], EntryKind.Configuration));
    }

    [Fact]
    public void A_learner_is_promoted_only_once_caught_up()
    {
        var c = Cluster(4);
        var leader = ElectAndSettle(c);
        c.Isolate(3);
        Change(c, leader, Config(Voter(0), Voter(1), Voter(2), Learner(3)));
        for (var i = 0; i < 5; i++) c[leader].Propose(TestCluster.Bytes($"w{i}"));
        c.Settle();
        var promoted = Config(Voter(0), Voter(1), Voter(2), Voter(3));
        Assert.Equal(ProposeOutcome.LearnerBehind, c[leader].ProposeConfiguration(promoted).Outcome);

        c.Heal();
        c.TickAll(3);
        Assert.Equal(c[leader].LastIndex, c[3].LastIndex);
        Change(c, leader, promoted);
        Assert.True(c[3].IsVoter);
        Assert.Equal(3, c[leader].Configuration.Quorum);
    }

    [Fact]
    public void A_learner_that_kept_pace_within_the_last_election_timeout_is_promoted_though_the_commit_index_moved_on()
    {
        var c = Cluster(4);
        var leader = ElectAndSettle(c);
        Change(c, leader, Config(Voter(0), Voter(1), Voter(2), Learner(3)));
        c.TickAll(2);
        // Writes commit among the voters while the learner's acknowledgements are still on the way:
        // under steady load the commit index is always a little ahead of a learner that keeps up.
        c.Isolate(3);
        c[leader].Propose(TestCluster.Bytes("w"));
        c.Settle();
        Assert.True(c[3].LastIndex < c[leader].CommitIndex);
        Assert.Equal(ProposeOutcome.Accepted, c[leader].ProposeConfiguration(Config(Voter(0), Voter(1), Voter(2), Voter(3))).Outcome);
    }

    [Fact]
    public void A_learner_that_has_not_kept_pace_for_two_election_timeouts_is_behind()
    {
        var c = Cluster(4);
        var leader = ElectAndSettle(c);
        Change(c, leader, Config(Voter(0), Voter(1), Voter(2), Learner(3)));
        c.TickAll(2);
        c.Isolate(3);
        c[leader].Propose(TestCluster.Bytes("w"));
        c.TickAll(25); // two check-quorum rounds without an acknowledgement from the learner
        Assert.Equal(leader, c.Leader());
        Assert.Equal(ProposeOutcome.LearnerBehind, c[leader].ProposeConfiguration(Config(Voter(0), Voter(1), Voter(2), Voter(3))).Outcome);
    }

    [Fact]
    public void A_healthy_peer_counts_as_reachable_even_right_after_a_check_quorum_round_starts()
    {
        var c = Cluster(3);
        var leader = ElectAndSettle(c);
        // One election timeout of ticks with nothing delivered: a check-quorum round starts and
        // no acknowledgement of the new round has arrived yet.
        for (var i = 0; i < 10; i++) c[leader].Tick();
        Assert.Equal(Role.Leader, c[leader].Role);
        var follower = new[] { 0, 1, 2 }.First(i => i != leader);
        Assert.Equal(ProposeOutcome.Accepted, c[leader].ProposeConfiguration(ThreeVoters.With(new ConfigChange(ChangeKind.Remove, follower))).Outcome);
    }

    [Fact]
    public void A_change_after_which_the_reachable_voters_are_no_majority_is_refused()
    {
        var c = Cluster(4);
        var leader = ElectAndSettle(c);
        var down = new[] { 0, 1, 2 }.First(i => i != leader);
        c.Isolate(down);
        // An election timeout of silence: the leader no longer counts it as recently active.
        c.TickAll(25);
        Assert.Equal(leader, c.Leader());
        // 4 voters with one unreachable and the new one not yet heard from: 2 of a needed 3.
        Assert.Equal(ProposeOutcome.WouldLoseQuorum, c[leader].ProposeConfiguration(Config(Voter(0), Voter(1), Voter(2), Voter(3))).Outcome);
        // Removing the leader would leave {the other two}, one of them unreachable: 1 of 2.
        Assert.Equal(ProposeOutcome.WouldLoseQuorum, c[leader].ProposeConfiguration(ThreeVoters.With(new ConfigChange(ChangeKind.Remove, leader))).Outcome);
        // Removing the unreachable one is fine: the two that answer are the whole new majority.
        Change(c, leader, ThreeVoters.With(new ConfigChange(ChangeKind.Remove, down)));
        Assert.True(c[leader].ConfigurationCommitted);
    }

    [Fact]
    public void A_leader_that_removes_itself_leads_until_the_removal_commits_then_hands_over_and_never_campaigns()
    {
        var c = Cluster(3);
        var leader = ElectAndSettle(c);
        var rest = new[] { 0, 1, 2 }.Where(i => i != leader).ToArray();
        var r = c[leader].ProposeConfiguration(ThreeVoters.With(new ConfigChange(ChangeKind.Remove, leader)));
        Assert.Equal(ProposeOutcome.Accepted, r.Outcome);
        Assert.False(c[leader].IsVoter);
        Assert.Equal(Role.Leader, c[leader].Role); // still leading, not counting itself

        c.Settle();
        c.TickAll(3);
        var next = c.Leader();
        Assert.NotNull(next);
        Assert.Contains(next!.Value, rest);
        Assert.Equal(Role.Follower, c[leader].Role);
        Assert.True(c[next.Value].CommitIndex >= r.Index);

        // Cut off for long, the removed node never stands again.
        c.Isolate(leader);
        for (var i = 0; i < 200; i++) c[leader].Tick();
        Assert.Equal(Role.Follower, c[leader].Role);
    }

    [Fact]
    public void A_new_leader_asks_to_retry_a_change_until_it_has_had_an_election_timeout_to_hear_from_the_voters()
    {
        var c = Cluster(3);
        var old = ElectAndSettle(c);
        var rest = new[] { 0, 1, 2 }.Where(i => i != old).ToArray();
        var (next, silent) = (rest[0], rest[1]);
        c.Isolate(silent);
        Assert.True(c[old].TransferLeadership(next));
        c.Settle();
        Assert.Equal(next, c.Leader());
        Assert.True(c[next].CommitIndex > 0);

        // Removing the old leader would leave {next, silent}; next has not heard from silent yet,
        // as it would not from a healthy voter in its first moments: retry, not a refusal.
        var removeOld = ThreeVoters.With(new ConfigChange(ChangeKind.Remove, old));
        Assert.Equal(ProposeOutcome.LeaderNotReady, c[next].ProposeConfiguration(removeOld).Outcome);
        c.TickAll(10); // an election timeout of silence: now it is known unreachable
        Assert.Equal(next, c.Leader());
        Assert.Equal(ProposeOutcome.WouldLoseQuorum, c[next].ProposeConfiguration(removeOld).Outcome);
    }

    [Fact]
    public void A_removed_follower_that_misses_its_removal_is_sent_it_until_it_acknowledges()
    {
        var c = Cluster(3);
        var leader = ElectAndSettle(c);
        var removed = new[] { 0, 1, 2 }.First(i => i != leader);
        c.Isolate(removed); // busy or cut off while the removal commits
        var at = Change(c, leader, ThreeVoters.With(new ConfigChange(ChangeKind.Remove, removed)));
        Assert.True(c[leader].CommitIndex >= at);
        c.TickAll(30); // three election timeouts: more than a removed member used to be sent to

        c.Heal();
        c.TickAll(3);
        Assert.False(c[removed].Configuration.Contains(removed));
        Assert.True(c[removed].CommitIndex >= at);
        c.Isolate(removed);
        for (var i = 0; i < 200; i++) c[removed].Tick();
        Assert.Equal(Role.Follower, c[removed].Role);
        // Acknowledged: an election timeout later the leader no longer sends it anything.
        c.TickAll(11);
        Assert.DoesNotContain(c[leader].Progress, p => p.Id == removed);
    }

    [Fact]
    public void A_removed_member_that_never_answers_is_given_up_on_after_ten_election_timeouts()
    {
        var c = Cluster(3);
        var leader = ElectAndSettle(c);
        var removed = new[] { 0, 1, 2 }.First(i => i != leader);
        c.Isolate(removed);
        Change(c, leader, ThreeVoters.With(new ConfigChange(ChangeKind.Remove, removed)));
        c.TickAll(95);
        Assert.Contains(c[leader].Progress, p => p.Id == removed);
        c.TickAll(6);
        Assert.DoesNotContain(c[leader].Progress, p => p.Id == removed);
    }

    [Fact]
    public void A_removed_follower_is_told_of_its_removal_and_stops_campaigning()
    {
        var c = Cluster(3);
        var leader = ElectAndSettle(c);
        var removed = new[] { 0, 1, 2 }.First(i => i != leader);
        var at = Change(c, leader, ThreeVoters.With(new ConfigChange(ChangeKind.Remove, removed)));
        c.TickAll(2); // the next heartbeat tells it the removal is committed

        Assert.False(c[removed].Configuration.Contains(removed));
        Assert.True(c[removed].CommitIndex >= at);
        c.Isolate(removed);
        for (var i = 0; i < 200; i++) c[removed].Tick();
        Assert.Equal(Role.Follower, c[removed].Role);
        // After an election timeout the leader no longer sends it anything.
        Assert.Contains(c[leader].Progress, p => p.Id == removed);
        c.TickAll(10);
        Assert.DoesNotContain(c[leader].Progress, p => p.Id == removed);
    }

    [Fact]
    public void A_snapshot_records_the_configuration_and_a_restart_rebuilds_it_from_snapshot_and_log()
    {
        var c = Cluster(4);
        var leader = ElectAndSettle(c);
        var withLearner = Config(Voter(0), Voter(1), Voter(2), Learner(3));
        var at = Change(c, leader, withLearner);
        c[leader].Propose(TestCluster.Bytes("after"));
        c.Settle();
        c.TickAll(1);
        var node = c[leader];
        Assert.Equal(withLearner, node.ConfigurationAt(at));
        Assert.Equal(ThreeVoters, node.ConfigurationAt(at - 1));
        node.Compact(node.AppliedIndex);
        Assert.Equal(withLearner, node.CurrentSnapshot.Configuration);

        // A restart from the snapshot alone, then from a snapshot and a log holding a newer configuration.
        var restarted = new RaftNode(new RaftOptions { Id = 1, Bootstrap = ThreeVoters, Random = new Random(1) },
            new PersistedState { SnapshotIndex = 10, SnapshotTerm = 1, Applied = 10, SnapshotConfiguration = withLearner, HardState = new HardState(1, -1, 10) });
        Assert.Equal(withLearner, restarted.Configuration);
        var promoted = Config(Voter(0), Voter(1), Voter(2), Voter(3));
        var later = new RaftNode(new RaftOptions { Id = 1, Bootstrap = ThreeVoters, Random = new Random(1) }, new PersistedState
        {
            SnapshotIndex = 10, SnapshotTerm = 1, Applied = 10, SnapshotConfiguration = withLearner, HardState = new HardState(1, -1, 10),
            Entries = [new Entry(11, 1, EntryKind.Configuration, promoted.Encode())],
        });
        Assert.Equal(promoted, later.Configuration);
        Assert.Equal(11, later.ConfigurationIndex);
    }

    [Fact]
    public void The_first_leader_of_a_new_cluster_records_its_configuration_in_the_log()
    {
        var c = new TestCluster(3, configure: o => o with { Bootstrap = ThreeVoters, PersistBootstrapConfiguration = true });
        c.Campaign(0);
        var leader = c.Leader()!.Value;
        c.TickAll(2);
        var entry = c.Applied[leader].Single(e => e.Kind == EntryKind.Configuration);
        Assert.Equal(ThreeVoters, Configuration.Decode(entry.Data));
        Assert.All(c.Nodes.Values, n => Assert.Equal(entry.Index, n.ConfigurationIndex));
    }
}
