using RaftServer.StateMachine;

namespace RaftServer.Hosting;

/// <summary>The outcome of a keep-alive at the leader.</summary>
public enum RenewOutcome
{
    /// <summary>Renewed for another time to live.</summary>
    Renewed,
    /// <summary>The lease does not exist (expired, revoked) or is being revoked.</summary>
    NotFound,
    /// <summary>This node is not a leader whose keeper is running: ask the leader.</summary>
    NotLeader,
}

/// <summary>
/// The leader's clock for leases (model: etcd's lessor). Leases and the keys they hold are state
/// machine state, the same on every replica; <em>when</em> one expires is judged by the leader
/// alone, from its own monotonic clock, and acted on only through the log (a LeaseRevoke entry
/// that deletes the keys). Keep-alives renew the expiry here, in memory, never through the log.
/// <list type="bullet">
/// <item><see cref="Promote"/>: a new leader starts its keeper only once it has applied an entry
/// of its own term (so it knows every committed grant and revoke), and then gives every lease a
/// whole time to live from that moment: it never trusts a clock or an expiry of an earlier leader.</item>
/// <item>A keep-alive is renewed only after the leader confirmed its leadership after the request
/// arrived (the driver answers it as a linearizable read); a lease whose revoke was proposed is
/// not renewed, so no client is told "renewed" for a lease about to be deleted.</item>
/// <item>A leader that was cut off may still propose a revoke, but the entry commits only with a
/// majority, and a leader elected on the other side never had it: keys the new leader's clients
/// keep alive survive.</item>
/// <item><see cref="Demote"/>: leadership lost, everything here is forgotten.</item>
/// </list>
/// Owned by the node loop (not thread-safe).
/// </summary>
public sealed class LeaseKeeper
{
    /// <summary>Revokes proposed per call of <see cref="Expire"/> (one per tick) at most, so a mass
    /// expiry does not flood the log in one turn.</summary>
    public const int MaxRevokesPerTick = 100;
    /// <summary>A revoke proposed this long ago and not applied is proposed again.</summary>
    public const long RetryRevokeMs = 3000;

    private readonly Dictionary<long, long> _expiry = new();
    private readonly PriorityQueue<long, long> _byExpiry = new();
    private readonly Dictionary<long, long> _revoking = new();

    /// <summary>This node is the leader and its keeper runs.</summary>
    public bool Active { get; private set; }
    public int Count => _expiry.Count + _revoking.Count;

    /// <summary>The leader applied an entry of its term: every lease lives a whole time to live from now.</summary>
    public void Promote(IEnumerable<LeaseImage> leases, long nowMs)
    {
        Demote();
        Active = true;
        foreach (var lease in leases) Schedule(lease.Id, nowMs + lease.TtlMs);
    }

    public void Demote()
    {
        Active = false;
        _expiry.Clear();
        _byExpiry.Clear();
        _revoking.Clear();
    }

    /// <summary>An entry was applied that granted or revoked a lease.</summary>
    public void Applied(LeaseChange change, long nowMs)
    {
        if (!Active) return;
        switch (change.Kind)
        {
            case LeaseChangeKind.Granted:
                Schedule(change.Id, nowMs + change.TtlMs);
                break;
            case LeaseChangeKind.Revoked:
                _expiry.Remove(change.Id);
                _revoking.Remove(change.Id);
                break;
        }
    }

    /// <summary>A keep-alive, once the leader has confirmed it leads (see the class summary).</summary>
    public RenewOutcome Renew(long id, KvStore store, long nowMs, out long ttlMs)
    {
        ttlMs = 0;
        if (!Active) return RenewOutcome.NotLeader;
        if (_revoking.ContainsKey(id) || !store.TryGetLease(id, out ttlMs))
        {
            ttlMs = 0;
            return RenewOutcome.NotFound;
        }
        Schedule(id, nowMs + ttlMs);
        return RenewOutcome.Renewed;
    }

    /// <summary>When the lease expires on this leader's clock (tests, status).</summary>
    public bool TryGetExpiry(long id, out long expiryMs) => _expiry.TryGetValue(id, out expiryMs);

    /// <summary>
    /// Proposes a revoke for each lease whose time is up (at most <see cref="MaxRevokesPerTick"/>),
    /// and again for a revoke not applied within <see cref="RetryRevokeMs"/>. <paramref name="propose"/>
    /// proposes the revoke entry and says whether the core accepted it.
    /// </summary>
    public void Expire(long nowMs, Func<long, bool> propose)
    {
        if (!Active) return;
        var proposed = 0;
        if (_revoking.Count > 0)
        {
            foreach (var id in _revoking.Where(r => nowMs - r.Value >= RetryRevokeMs).Select(r => r.Key).ToList())
            {
                if (proposed >= MaxRevokesPerTick || !propose(id)) return;
                _revoking[id] = nowMs;
                proposed++;
            }
        }
        while (_byExpiry.TryPeek(out var id, out var at) && at <= nowMs)
        {
            if (!_expiry.TryGetValue(id, out var expiry) || expiry != at)
            {
                _byExpiry.Dequeue(); // renewed since (a later entry is queued) or gone
                continue;
            }
            if (proposed >= MaxRevokesPerTick || !propose(id)) return;
            _byExpiry.Dequeue();
            _expiry.Remove(id);
            _revoking[id] = nowMs;
            proposed++;
        }
    }

    private void Schedule(long id, long expiryMs)
    {
        _expiry[id] = expiryMs;
        _byExpiry.Enqueue(id, expiryMs);
    }
}
