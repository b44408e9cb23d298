using RaftServer.Consensus;
using RaftServer.StateMachine;

namespace RaftServer.Hosting;

/// <summary>
/// The driver's part in revisions, watches and leases (docs/design.md, "Coordination"): it feeds
/// each applied entry's changes to the <see cref="WatchHub"/> and runs the leader's
/// <see cref="LeaseKeeper"/> on its clock. Called from the main file at fixed points of the turn.
/// </summary>
public sealed partial class RaftDriver
{
    private readonly LeaseKeeper _leases = new();
    private Func<long, bool>? _proposeRevoke;

    /// <summary>The leader's lease clock (inactive on followers).</summary>
    public LeaseKeeper Leases => _leases;

    /// <summary>The window of history watchers read (none in tests that do not watch).</summary>
    public WatchHub? Watches { get; set; }

    /// <summary>The core and the store were rebuilt from disk: the window starts after the store's
    /// revision (the log replayed after it refills it), no lease clock runs yet.</summary>
    private void Restarted()
    {
        _leases.Demote();
        Watches?.Reset(_kv.Revision);
        Watches?.Publish();
    }

    /// <summary>Right after <see cref="KvStore.Apply"/>: its changes to the window, its lease change to the keeper.</summary>
    private void Applied()
    {
        var change = _kv.LastLeaseChange;
        if (change.Kind != LeaseChangeKind.None) _leases.Applied(change, _nowMs());
        if (Watches is { } watches)
        {
            var events = _kv.LastEvents;
            if (!events.IsEmpty) watches.Append(events, _kv.Revision);
        }
    }

    /// <summary>
    /// After a Ready's entries, before its reads are answered: a leader that has now applied an
    /// entry of its own term starts its lease clock (every lease gets a whole time to live from
    /// now); watchers are woken once. Not a leader that removed itself and still leads until its
    /// removal commits (<see cref="NoLongerAMember"/> stopped its clock): starting it again would
    /// forget the revokes it had proposed and renew those leases while the revokes commit.
    /// </summary>
    private void AppliedAll()
    {
        if (!_leases.Active && _node.Role == Role.Leader && _appliedTerm == _node.Term && _membership.Current.Contains(_membership.Self))
            _leases.Promote(_kv.Leases, _nowMs());
        Watches?.Publish();
    }

    /// <summary>A leader's snapshot replaced the store: the window restarts after its revision.</summary>
    private void StoreReplaced()
    {
        Watches?.Reset(_kv.Revision);
        Watches?.Publish();
    }

    private void LeadershipLost() => _leases.Demote();

    /// <summary>This node left the configuration: its applied log stops growing, so its watches
    /// end (their clients resume on a member) and it judges no lease.</summary>
    private void NoLongerAMember()
    {
        _leases.Demote();
        Watches?.CancelAll(WatchEnd.NodeStopping, "this node is no longer a member of the cluster");
    }

    private void Suspending()
    {
        _leases.Demote();
        Watches?.CancelAll(WatchEnd.NodeStopping, "the node is suspended");
    }

    /// <summary>On each tick: leases whose time is up are revoked through the log (a revoke with no
    /// client session; its apply deletes the keys on every replica).</summary>
    private void ExpireLeases()
    {
        if (!_leases.Active) return;
        _proposeRevoke ??= id =>
        {
            if (_node.Propose(Command.EncodeLeaseRevoke(0, 0, 0, id, expired: true)).Outcome != ProposeOutcome.Accepted) return false;
            Log.LeaseExpired(_logger, id);
            return true;
        };
        _leases.Expire(_nowMs(), _proposeRevoke);
    }

    /// <summary>A keep-alive, answered as a linearizable read: the leader confirmed its leadership
    /// after the request arrived and has applied that far, so a revoke committed before is applied.</summary>
    private void AnswerKeepAlive(PendingRead read)
    {
        switch (_leases.Renew(read.KeepAliveLease, _kv, _nowMs(), out var ttlMs))
        {
            case RenewOutcome.Renewed:
                read.TrySetResult(new ReadOutcome(OutcomeCode.Ok, true, null, null, false, SoftState.NoLeader, null, default, _kv.Revision, ttlMs));
                break;
            case RenewOutcome.NotFound:
                read.TrySetResult(new ReadOutcome(OutcomeCode.Ok, false, null, null, false, SoftState.NoLeader, null, default, _kv.Revision));
                break;
            default:
                read.TrySetResult(new ReadOutcome(OutcomeCode.NotLeader, false, null, null, false, LeaderHint(),
                    _node.Role == Role.Leader ? "the new leader has not applied an entry of its term yet" : "this node is not the leader"));
                break;
        }
    }
}
