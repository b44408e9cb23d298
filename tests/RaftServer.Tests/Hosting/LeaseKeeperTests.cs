using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.StateMachine;

namespace RaftServer.Tests.Hosting;

public sealed class LeaseKeeperTests
{
    private readonly LeaseKeeper _keeper = new();
    private readonly KvStore _store = new();
    private readonly List<long> _proposed = new();
    private long _index;

    private long Grant(long ttlMs)
    {
        _store.Apply(new Entry(++_index, 1, EntryKind.Command, Command.EncodeLeaseGrant(0, 0, 0, ttlMs)));
        return _index;
    }

    private bool Propose(long id)
    {
        _proposed.Add(id);
        return true;
    }

    [Fact]
    public void A_renewed_lease_expires_a_ttl_after_its_last_renewal_and_not_at_its_old_time()
    {
        var id = Grant(1_000);
        _keeper.Promote(_store.Leases, nowMs: 0);
        Assert.Equal(RenewOutcome.Renewed, _keeper.Renew(id, _store, 800, out var ttl));
        Assert.Equal(1_000, ttl);
        _keeper.Expire(1_000, Propose);
        Assert.Empty(_proposed);
        _keeper.Expire(1_799, Propose);
        Assert.Empty(_proposed);
        _keeper.Expire(1_800, Propose);
        Assert.Equal([id], _proposed);
        // Proposed: not renewable, not proposed again until the retry time.
        Assert.Equal(RenewOutcome.NotFound, _keeper.Renew(id, _store, 1_801, out _));
        _keeper.Expire(1_800 + LeaseKeeper.RetryRevokeMs - 1, Propose);
        Assert.Single(_proposed);
        _keeper.Expire(1_800 + LeaseKeeper.RetryRevokeMs, Propose);
        Assert.Equal([id, id], _proposed);
        _keeper.Applied(new LeaseChange(LeaseChangeKind.Revoked, id, 1_000), 5_000);
        _keeper.Expire(100_000, Propose);
        Assert.Equal(2, _proposed.Count);
        Assert.Equal(0, _keeper.Count);
    }

    [Fact]
    public void Revokes_are_proposed_at_most_MaxRevokesPerTick_at_a_time_and_refused_ones_wait_for_the_next_tick()
    {
        for (var i = 0; i < LeaseKeeper.MaxRevokesPerTick + 10; i++) Grant(100);
        _keeper.Promote(_store.Leases, 0);
        _keeper.Expire(100, Propose);
        Assert.Equal(LeaseKeeper.MaxRevokesPerTick, _proposed.Count);
        _keeper.Expire(150, _ => false); // a leadership transfer refuses proposals
        Assert.Equal(LeaseKeeper.MaxRevokesPerTick, _proposed.Count);
        _keeper.Expire(200, Propose);
        Assert.Equal(LeaseKeeper.MaxRevokesPerTick + 10, _proposed.Count);
        Assert.Equal(_proposed.Count, _proposed.Distinct().Count());
    }

    [Fact]
    public void An_inactive_keeper_renews_nothing_and_expires_nothing()
    {
        var id = Grant(100);
        Assert.Equal(RenewOutcome.NotLeader, _keeper.Renew(id, _store, 0, out _));
        _keeper.Applied(new LeaseChange(LeaseChangeKind.Granted, id, 100), 0);
        _keeper.Expire(1_000_000, Propose);
        Assert.Empty(_proposed);

        _keeper.Promote(_store.Leases, 1_000);
        Assert.True(_keeper.TryGetExpiry(id, out var expiry));
        Assert.Equal(1_100, expiry);
        _keeper.Demote();
        _keeper.Expire(1_000_000, Propose);
        Assert.Empty(_proposed);

        _keeper.Promote(_store.Leases, 0);
        Assert.Equal(RenewOutcome.NotFound, _keeper.Renew(99, _store, 0, out _));
    }
}
