using System.Text;
using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.StateMachine;

namespace RaftServer.Tests.Hosting;

/// <summary>
/// The server's real Ready handling (<see cref="RaftDriver"/>), in-process with a fake log, a
/// fake transport and fake snapshots that record what happened in which order: the rules the
/// real-process tests can only observe from outside.
/// </summary>
public sealed class RaftDriverTests
{
    private readonly DriverHarness _h = new();

    /// <summary>The outcome of a request the driver must already have answered.</summary>
    private static T Done<T>(TaskCompletionSource<T> request)
    {
        Assert.True(request.Task.IsCompleted, "the request is not answered");
        return request.Task.Result;
    }

    private static Message FromNode2(MessageType type, long term, long index = 0, long logTerm = 0, long commit = 0, long context = 0, params Entry[] entries) =>
        new() { Type = type, From = 2, To = DriverHarness.Self, Term = term, Index = index, LogTerm = logTerm, Commit = commit, Context = context, Entries = entries };

    [Fact]
    public void A_leaders_appends_leave_before_its_own_fsync()
    {
        _h.BecomeLeader();
        var w = new PendingWrite(DriverHarness.Set("a", "1"));
        _h.Driver.Handle(new WriteRequested(w));
        _h.Turn();

        var save = _h.Journal.IndexOf("save sync entries=2..2");
        Assert.True(_h.Journal.IndexOf("send Append 1->2") < save, _h.Journal.ToString());
        Assert.True(_h.Journal.IndexOf("send Append 1->3") < save, _h.Journal.ToString());
        Assert.False(w.Task.IsCompleted);
    }

    [Fact]
    public void A_leader_that_is_its_own_majority_sends_nothing_before_the_fsync_that_its_commit_depends_on()
    {
        // One voter and a learner: the leader commits its entry as it appends it, so an Append sent
        // before the fsync would tell the learner to apply an entry a crash could still lose.
        var h = new DriverHarness(bootstrap: new Configuration([new ConfigMember(1, MemberRole.Voter, "h", 1), new ConfigMember(2, MemberRole.Learner, "h", 2)]));
        for (var i = 0; i < 100 && h.Node.Role != Role.Leader; i++) h.Driver.Tick();
        h.Turn();
        Assert.Equal(Role.Leader, h.Node.Role);
        h.Step(FromNode2(MessageType.AppendResponse, h.Node.Term, index: h.Node.LastIndex)); // the learner is up to date
        h.Journal.Clear();

        h.Driver.Handle(new WriteRequested(new PendingWrite(DriverHarness.Set("a", "1"))));
        h.Turn();

        var save = h.Journal.IndexOf("save sync entries=");
        Assert.True(save < h.Journal.IndexOf("send Append 1->2"), h.Journal.ToString());
    }

    [Fact]
    public void A_candidates_vote_requests_leave_only_after_its_term_and_vote_are_durable()
    {
        for (var i = 0; i < 100 && _h.Node.Role == Role.Follower; i++) _h.Driver.Tick();
        Assert.Equal(Role.Candidate, _h.Node.Role);
        _h.Turn();

        Assert.True(_h.Journal.IndexOf("save sync term=1 vote=1") < _h.Journal.IndexOf("send Vote 1->2"), _h.Journal.ToString());
    }

    [Fact]
    public void A_vote_leaves_only_after_it_is_durable()
    {
        _h.Step(FromNode2(MessageType.Vote, term: 1));

        Assert.True(_h.Journal.IndexOf("save sync term=1 vote=2") < _h.Journal.IndexOf("send VoteResponse 1->2"), _h.Journal.ToString());
        Assert.Equal(2, _h.Log.HardState.VotedFor);
    }

    [Fact]
    public void A_leader_that_steps_down_to_vote_does_not_send_its_answer_early()
    {
        _h.BecomeLeader();
        // A transfer's candidate (exempt from the leader lease) of a higher term with a longer log:
        // the leader becomes its follower and votes in the same Ready.
        _h.Step(FromNode2(MessageType.Vote, term: 5, index: 10, logTerm: 4, context: RaftNode.TransferVoteContext));

        Assert.Equal(Role.Follower, _h.Node.Role);
        Assert.True(_h.Journal.IndexOf("save sync term=5 vote=2") < _h.Journal.IndexOf("send VoteResponse 1->2"), _h.Journal.ToString());
    }

    [Fact]
    public void An_append_is_acknowledged_only_after_its_entries_are_durable()
    {
        _h.FollowNode2();
        _h.Step(FromNode2(MessageType.Append, term: 1, entries: new Entry(1, 1, EntryKind.Command, DriverHarness.Set("k", "v"))));

        Assert.True(_h.Journal.IndexOf("save sync entries=1..1") < _h.Journal.IndexOf("send AppendResponse 1->2"), _h.Journal.ToString());
    }

    [Fact]
    public void A_member_whose_removal_is_only_appended_is_still_heard_and_refused_once_the_removal_commits()
    {
        // A leader appended "remove node 3" here and may die before it commits: node 3 may then win
        // the next election (the others never had the entry) and must be heard, to overwrite it.
        _h.FollowNode2();
        var removal = Configuration.FromVoters([1, 2, 3]).With(new ConfigChange(ChangeKind.Remove, 3));
        _h.Step(FromNode2(MessageType.Append, term: 1, entries: new Entry(1, 1, EntryKind.Configuration, removal.Encode())));
        Assert.False(_h.Membership.Contains(3));
        Assert.False(_h.Membership.IsGone(3));

        _h.Step(FromNode2(MessageType.Heartbeat, term: 1, commit: 1));
        Assert.Equal(1, _h.Driver.State.AppliedIndex);
        Assert.True(_h.Membership.IsGone(3));
    }

    [Fact]
    public void A_write_is_answered_only_once_its_entry_is_committed_and_applied()
    {
        _h.BecomeLeader();
        var w = new PendingWrite(DriverHarness.Set("a", "1"));
        _h.Driver.Handle(new WriteRequested(w));
        _h.Turn();
        Assert.False(w.Task.IsCompleted);

        _h.Step(FromNode2(MessageType.AppendResponse, _h.Node.Term, index: 2));

        Assert.Equal(OutcomeCode.Ok, Done(w).Code);
        Assert.Equal(2, Done(w).Result.Index);
        Assert.True(_h.Driver.State.TryGet("a", out var value));
        Assert.Equal("1", Encoding.UTF8.GetString(value.Span));
    }

    [Fact]
    public void A_write_waiting_when_leadership_is_lost_is_answered_unavailable_with_the_new_leader()
    {
        _h.BecomeLeader();
        var w = new PendingWrite(DriverHarness.Set("a", "1"));
        _h.Driver.Handle(new WriteRequested(w));
        _h.Turn();

        _h.Step(FromNode2(MessageType.Heartbeat, term: _h.Node.Term + 1));

        Assert.Equal(OutcomeCode.Unavailable, Done(w).Code);
        Assert.Equal(2, Done(w).LeaderHint);
    }

    [Fact]
    public void A_leader_that_steps_down_in_the_turn_its_entry_commits_still_answers_that_write_Ok()
    {
        _h.BecomeLeader();
        var committed = new PendingWrite(DriverHarness.Set("a", "1"));
        var lost = new PendingWrite(DriverHarness.Set("b", "2"));
        _h.Driver.Handle(new WriteRequested(committed));
        _h.Turn();
        _h.Driver.Handle(new WriteRequested(lost));
        _h.Turn();

        // One turn: node 2 acknowledges the first write (it commits), then a higher term deposes us.
        _h.Driver.Receive([FromNode2(MessageType.AppendResponse, _h.Node.Term, index: 2)]);
        _h.Driver.Receive([FromNode2(MessageType.Heartbeat, term: _h.Node.Term + 1)]);
        _h.Turn();

        Assert.Equal(Role.Follower, _h.Node.Role);
        Assert.Equal(OutcomeCode.Ok, Done(committed).Code);
        Assert.Equal(OutcomeCode.Unavailable, Done(lost).Code);
    }

    [Fact]
    public void A_write_to_a_follower_is_refused_with_the_leader_as_hint()
    {
        _h.FollowNode2();
        var w = new PendingWrite(DriverHarness.Set("a", "1"));
        _h.Driver.Handle(new WriteRequested(w));
        Assert.Equal((OutcomeCode.NotLeader, 2), (Done(w).Code, Done(w).LeaderHint));
    }

    [Fact]
    public void A_read_is_answered_only_once_the_state_machine_applied_its_read_index()
    {
        _h.FollowNode2();
        var read = new PendingRead { Key = "k" };
        _h.Driver.Handle(new ReadRequested(read));
        _h.Turn();
        var ask = Assert.Single(_h.Sender.Take(), m => m.Type == MessageType.ReadIndex);

        _h.Step(FromNode2(MessageType.ReadIndexResponse, term: 1, index: 2, context: ask.Context));
        Assert.False(read.Task.IsCompleted);

        _h.Step(FromNode2(MessageType.Append, term: 1, commit: 1, entries: [Entry.NoOp(1, 1), new Entry(2, 1, EntryKind.Command, DriverHarness.Set("k", "v"))]));
        Assert.Equal(1, _h.Driver.State.AppliedIndex);
        Assert.False(read.Task.IsCompleted);

        _h.Step(FromNode2(MessageType.Heartbeat, term: 1, commit: 2));
        Assert.Equal(OutcomeCode.Ok, Done(read).Code);
        Assert.Equal("v", Encoding.UTF8.GetString(Done(read).Value.Span));
    }

    [Fact]
    public void A_stale_read_is_answered_at_once_from_local_state()
    {
        var read = new PendingRead { Key = "missing", Stale = true };
        _h.Driver.Handle(new ReadRequested(read));
        Assert.Equal((OutcomeCode.Ok, false), (Done(read).Code, Done(read).Found));
        Assert.Empty(_h.Sender.Sent);
    }

    [Fact]
    public void Suspend_fails_everything_drops_what_arrives_and_resumes_from_disk()
    {
        _h.BecomeLeader();
        var term = _h.Node.Term;
        var write = new PendingWrite(DriverHarness.Set("a", "1"));
        _h.Driver.Handle(new WriteRequested(write));
        var read = new PendingRead { Key = "a" };
        _h.Driver.Handle(new ReadRequested(read));
        _h.Turn();
        Assert.False(write.Task.IsCompleted || read.Task.IsCompleted);

        _h.Driver.Handle(new SuspendRequested(1));

        Assert.True(_h.Driver.View.Suspended);
        Assert.Equal(OutcomeCode.Unavailable, Done(write).Code);
        Assert.Equal(OutcomeCode.Unavailable, Done(read).Code);
        Assert.True(_h.Sender.Paused);
        Assert.Equal(1, _h.Sockets.Closed);
        _h.Journal.IndexOf("cancel transfers");

        // While suspended nothing reaches the core and nothing is answered but "suspended".
        _h.Journal.Clear();
        _h.Step(FromNode2(MessageType.Heartbeat, term: term + 3));
        _h.Driver.Tick();
        Assert.Equal(term, _h.Node.Term);
        var late = new PendingWrite(DriverHarness.Set("b", "2"));
        _h.Driver.Handle(new WriteRequested(late));
        Assert.Equal(OutcomeCode.Unavailable, Done(late).Code);
        Assert.Empty(_h.Journal.Lines);

        _h.Now += 999;
        _h.Driver.ResumeIfDue();
        Assert.Equal(0, _h.Reopened);
        _h.Now += 1;
        _h.Driver.ResumeIfDue();
        Assert.Equal(1, _h.Reopened);
        Assert.False(_h.Driver.View.Suspended);
        Assert.False(_h.Sender.Paused);
        Assert.Equal(Role.Follower, _h.Node.Role);
        Assert.Equal(term, _h.Node.Term); // rebuilt from the durable hard state
    }

    [Fact]
    public void A_leaders_snapshot_is_installed_before_anything_of_its_Ready_is_persisted_or_sent()
    {
        _h.FollowNode2();
        var image = new KvImage(10, [new KeyValueItem("k", "v"u8.ToArray())], new SessionTable().CaptureImage());
        _h.Step(new Message
        {
            Type = MessageType.Snapshot, From = 2, To = DriverHarness.Self, Term = 1, Index = 10, LogTerm = 1,
            Snapshot = new SnapshotMetadata(10, 1, [1, 2, 3]), SnapshotData = image,
        });

        var install = _h.Journal.IndexOf("install 10");
        Assert.True(install < _h.Journal.IndexOf("reset 10"));
        Assert.True(_h.Journal.IndexOf("reset 10") < _h.Journal.IndexOf("save sync"));
        Assert.True(_h.Journal.IndexOf("save sync") < _h.Journal.IndexOf("send AppendResponse 1->2"));
        Assert.Equal(10, _h.Driver.State.AppliedIndex);
        Assert.True(_h.Driver.State.TryGet("k", out _));
        Assert.Empty(_h.Snapshots.Dropped);
    }

    [Fact]
    public void A_received_snapshot_the_core_does_not_install_is_dropped()
    {
        _h.FollowNode2();
        _h.Step(FromNode2(MessageType.Append, term: 1, commit: 2, entries: [Entry.NoOp(1, 1), Entry.NoOp(2, 1)]));
        var image = new KvImage(2, [], new SessionTable().CaptureImage());
        _h.Step(new Message
        {
            Type = MessageType.Snapshot, From = 2, To = DriverHarness.Self, Term = 1, Index = 2, LogTerm = 1,
            Snapshot = new SnapshotMetadata(2, 1, [1, 2, 3]), SnapshotData = image,
        });

        Assert.Same(image, Assert.Single(_h.Snapshots.Dropped));
        Assert.DoesNotContain(_h.Journal.Lines, l => l.StartsWith("install", StringComparison.Ordinal));
    }

    [Fact]
    public void Status_reports_the_members_and_the_leaders_view_of_its_peers()
    {
        _h.BecomeLeader();
        var status = _h.Driver.Status();

        Assert.Equal((1, Role.Leader), (status.Id, status.Role));
        Assert.Equal(1, status.Leader!.Id);
        Assert.Equal([1, 2, 3], status.Members.Select(m => m.Id));
        Assert.Equal([2, 3], status.Peers.Select(p => p.Id));
        Assert.All(status.Peers, p => Assert.True(p.Reachable));
        Assert.All(status.Peers, p => Assert.Equal(1, p.MatchIndex));
    }
}
