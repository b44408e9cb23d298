using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.StateMachine;

namespace RaftServer.Tests.Hosting;

/// <summary>
/// The driver's lease clock and watch feed, turn by turn with fakes: when a leader starts judging
/// expiry, how a keep-alive is answered, that expiry goes through the log, and what watchers see.
/// </summary>
public sealed class RaftDriverCoordinationTests
{
    private readonly DriverHarness _h = new();

    private static T Done<T>(TaskCompletionSource<T> request)
    {
        Assert.True(request.Task.IsCompleted, "the request is not answered");
        return request.Task.Result;
    }

    private Message From(int peer, MessageType type, long context = 0, long index = 0) =>
        new() { Type = type, From = peer, To = DriverHarness.Self, Term = _h.Node.Term, Context = context, Index = index };

    /// <summary>Proposes <paramref name="data"/> on the leader and commits it (node 2 acknowledges).</summary>
    private WriteOutcome Commit(byte[] data)
    {
        var w = new PendingWrite(data);
        _h.Driver.Handle(new WriteRequested(w));
        _h.Turn();
        _h.Step(From(2, MessageType.AppendResponse, index: _h.Node.LastIndex));
        return Done(w);
    }

    /// <summary>A keep-alive as the client service sends it: a read the leader confirms by a heartbeat round.</summary>
    private PendingRead KeepAlive(long lease, bool confirm = true)
    {
        var read = new PendingRead { KeepAliveLease = lease };
        _h.Driver.Handle(new ReadRequested(read));
        _h.Turn();
        var heartbeat = _h.Sender.Take().LastOrDefault(m => m.Type == MessageType.Heartbeat && m.Context != 0);
        if (confirm && heartbeat is not null) _h.Step(From(2, MessageType.HeartbeatResponse, context: heartbeat.Context));
        return read;
    }

    private static byte[] Grant(long ttlMs) => Command.EncodeLeaseGrant(0, 0, 0, ttlMs);

    private static byte[] Put(string key, long lease) => Command.EncodePut(0, 0, 0, key, "v"u8, default, lease);

    [Fact]
    public void A_keep_alive_is_renewed_only_once_a_heartbeat_round_confirmed_the_leader()
    {
        _h.BecomeLeader();
        var lease = Commit(Grant(3_000)).Result.Index;
        Assert.True(_h.Driver.Leases.TryGetExpiry(lease, out var granted));
        Assert.Equal(_h.Now + 3_000, granted);

        _h.Now += 1_000;
        var read = new PendingRead { KeepAliveLease = lease };
        _h.Driver.Handle(new ReadRequested(read));
        _h.Turn();
        var round = _h.Sender.Take().First(m => m.Type == MessageType.Heartbeat && m.To == 2);
        Assert.False(read.Task.IsCompleted);
        Assert.True(_h.Driver.Leases.TryGetExpiry(lease, out var unchanged));
        Assert.Equal(granted, unchanged);

        _h.Now += 100;
        _h.Step(From(2, MessageType.HeartbeatResponse, context: round.Context));

        var outcome = Done(read);
        Assert.Equal((OutcomeCode.Ok, true, 3_000L), (outcome.Code, outcome.Found, outcome.LeaseTtlMs));
        Assert.True(_h.Driver.Leases.TryGetExpiry(lease, out var renewed));
        Assert.Equal(_h.Now + 3_000, renewed);
    }

    [Fact]
    public void An_expired_lease_is_revoked_through_the_log_and_its_keys_deleted_for_watchers()
    {
        var hub = new WatchHub(64, schedule: a => a());
        _h.Driver.Watches = hub;
        _h.BecomeLeader();
        var lease = Commit(Grant(1_000)).Result.Index;
        Assert.Equal(OutcomeCode.Ok, Commit(Put("lock/a", lease)).Code);
        using var watcher = hub.Open("lock/", prefix: true, startRevision: 1);

        _h.Now += 999;
        _h.Driver.Tick();
        _h.Turn();
        Assert.DoesNotContain(_h.Log.Entries, e => IsRevoke(e, lease));

        _h.Now += 1;
        _h.Driver.Tick();
        _h.Turn();
        var revoke = Assert.Single(_h.Log.Entries, e => IsRevoke(e, lease));
        Assert.True(_h.Driver.State.TryGetItem("lock/a", out _)); // not before it commits

        // Proposed and not yet applied: a keep-alive is told the lease is gone.
        var late = KeepAlive(lease);
        Assert.Equal((OutcomeCode.Ok, false), (Done(late).Code, Done(late).Found));

        _h.Step(From(2, MessageType.AppendResponse, index: revoke.Index));
        Assert.False(_h.Driver.State.TryGetItem("lock/a", out _));
        Assert.False(_h.Driver.State.TryGetLease(lease, out _));
        var events = new List<WatchedEvent>();
        watcher.Read(events);
        Assert.Equal([(KvEventKind.Put, "lock/a"), (KvEventKind.Delete, "lock/a")], events.Select(e => (e.Change.Kind, e.Change.Item.Key)));
        Assert.Equal(revoke.Index, events[^1].Revision);
    }

    private static bool IsRevoke(Entry e, long lease) =>
        e.Kind == EntryKind.Command && Command.TryDecode(e.Data, out var c) && c.Op == CommandOp.LeaseRevoke && c.Lease == lease && c.Expired;

    [Fact]
    public void A_new_leader_starts_its_lease_clock_only_after_applying_an_entry_of_its_term_and_gives_each_lease_a_whole_ttl()
    {
        // Node 2 led term 1 and granted a lease of 5 s long ago (by its clock).
        _h.FollowNode2();
        var grant = new Entry(2, 1, EntryKind.Command, Grant(5_000));
        _h.Step(new Message { Type = MessageType.Append, From = 2, To = DriverHarness.Self, Term = 1, Commit = 2, Entries = [Entry.NoOp(1, 1), grant] });
        Assert.True(_h.Driver.State.TryGetLease(2, out _));
        _h.Now = 60_000;
        for (var i = 0; i < 1000; i++) _h.Driver.Tick(); // a follower never judges expiry
        _h.Turn();
        Assert.False(_h.Driver.Leases.Active);

        // Node 1 wins term 2; its no-op is not committed yet: no clock, keep-alives refused.
        for (var i = 0; i < 100 && _h.Node.Role != Role.Candidate; i++) _h.Driver.Tick();
        _h.Turn();
        _h.Step(From(3, MessageType.VoteResponse));
        Assert.Equal(Role.Leader, _h.Node.Role);
        Assert.False(_h.Driver.Leases.Active);

        _h.Now = 70_000;
        _h.Step(From(3, MessageType.AppendResponse, index: _h.Node.LastIndex));
        Assert.True(_h.Driver.Leases.Active);
        Assert.True(_h.Driver.Leases.TryGetExpiry(2, out var expiry));
        Assert.Equal(75_000, expiry);

        // Stepping down forgets the clock.
        _h.Step(new Message { Type = MessageType.Heartbeat, From = 3, To = DriverHarness.Self, Term = _h.Node.Term + 1 });
        Assert.False(_h.Driver.Leases.Active);
        Assert.False(_h.Driver.Leases.TryGetExpiry(2, out _));
    }

    [Fact]
    public void A_keep_alive_at_a_follower_is_refused_with_the_leader_as_hint()
    {
        _h.FollowNode2();
        var read = new PendingRead { KeepAliveLease = 5 };
        _h.Driver.Handle(new ReadRequested(read));
        _h.Turn();
        var ask = Assert.Single(_h.Sender.Take(), m => m.Type == MessageType.ReadIndex);
        _h.Step(new Message { Type = MessageType.ReadIndexResponse, From = 2, To = DriverHarness.Self, Term = 1, Index = 0, Context = ask.Context });
        Assert.Equal((OutcomeCode.NotLeader, 2), (Done(read).Code, Done(read).LeaderHint));
    }

    [Fact]
    public void Gets_and_ranges_carry_revisions()
    {
        _h.BecomeLeader();
        var put = Commit(Command.EncodePut(0, 0, 0, "k", "v"u8));
        var read = new PendingRead { Key = "k", Stale = true };
        _h.Driver.Handle(new ReadRequested(read));
        Assert.Equal(put.Result.Index, Done(read).Revision);
        Assert.Equal((put.Result.Index, put.Result.Index, 1L), (Done(read).Item.CreateRevision, Done(read).Item.ModRevision, Done(read).Item.Version));
        var missing = new PendingRead { Key = "nope", Stale = true };
        _h.Driver.Handle(new ReadRequested(missing));
        Assert.Equal((false, put.Result.Index), (Done(missing).Found, Done(missing).Revision));
    }

    [Fact]
    public void Suspend_ends_every_watcher_and_the_lease_clock()
    {
        var hub = new WatchHub(64, schedule: a => a());
        _h.Driver.Watches = hub;
        _h.BecomeLeader();
        Commit(Grant(1_000));
        using var watcher = hub.Open("", true, 1);
        _h.Driver.Handle(new SuspendRequested(1));
        Assert.True(watcher.Ended.IsCancellationRequested);
        Assert.Equal(WatchEnd.NodeStopping, watcher.EndReason);
        Assert.False(_h.Driver.Leases.Active);
    }

    [Fact]
    public void A_node_removed_from_the_configuration_ends_its_watchers()
    {
        var hub = new WatchHub(64, schedule: a => a());
        _h.Driver.Watches = hub;
        using var watcher = hub.Open("", true, 0);
        var withoutMe = new Configuration([new ConfigMember(2, MemberRole.Voter, "h", 2), new ConfigMember(3, MemberRole.Voter, "h", 3)], removed: [DriverHarness.Self]);
        _h.Step(new Message
        {
            Type = MessageType.Append, From = 2, To = DriverHarness.Self, Term = 1, Index = 0, LogTerm = 0,
            Entries = [new Entry(1, 1, EntryKind.Configuration, withoutMe.Encode())],
        });
        Assert.Null(_h.Node.Configuration.Find(DriverHarness.Self));
        Assert.True(watcher.Ended.IsCancellationRequested);
        Assert.Equal(WatchEnd.NodeStopping, watcher.EndReason);
    }
}
