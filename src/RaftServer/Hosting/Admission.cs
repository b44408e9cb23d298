namespace RaftServer.Hosting;

/// <summary>
/// Admission control for client writes and reads (model: etcd's "too many requests"): a node holds
/// at most <see cref="MaxWrites"/> writes and <see cref="MaxReads"/> reads at once, counted from
/// the moment a request is posted to the loop until the loop has answered it; one more is refused
/// at once (RESOURCE_EXHAUSTED, nothing proposed), so a flood of clients meets a clear error
/// instead of growing the loop's queue and its waiting lists without bound.
/// <para>
/// Two counts make the total: requests posted and not yet taken by the loop (any thread adds,
/// the loop subtracts what it took at the end of each turn) and requests the loop holds (its
/// <see cref="PendingRequests"/>, published at the end of each turn). Within a turn a request the
/// loop took is in both counts: admission errs towards refusing, never towards holding more.
/// </para>
/// </summary>
public sealed class Admission(int maxWrites, int maxReads)
{
    /// <summary>How long a refused client is asked to wait before it tries again (the trailer
    /// <c>grpc-retry-pushback-ms</c>): a few loop turns, enough for the backlog to drain.</summary>
    public const int RetryPushbackMs = 100;

    private int _queuedWrites, _queuedReads;
    private volatile int _heldWrites, _heldReads;

    public int MaxWrites { get; } = maxWrites;
    public int MaxReads { get; } = maxReads;

    /// <summary>Writes and reads held now (posted or waiting in the loop), for status and tests.</summary>
    public int PendingWrites => Volatile.Read(ref _queuedWrites) + _heldWrites;
    public int PendingReads => Volatile.Read(ref _queuedReads) + _heldReads;

    /// <summary>Takes room for <paramref name="count"/> writes (a SetMany's items together); false when
    /// there is none. A batch larger than the cap is let in when nothing else is pending, so every
    /// legal request can be served by an idle node.</summary>
    public bool TryAdmitWrites(int count) => TryAdmit(ref _queuedWrites, _heldWrites, count, MaxWrites);

    public bool TryAdmitRead() => TryAdmit(ref _queuedReads, _heldReads, 1, MaxReads);

    private static bool TryAdmit(ref int queued, int held, int count, int max)
    {
        var total = Interlocked.Add(ref queued, count) + held;
        if (total <= max || total == count) return true;
        Interlocked.Add(ref queued, -count);
        return false;
    }

    /// <summary>
    /// The loop thread, at the end of a turn: it took <paramref name="takenWrites"/> writes and
    /// <paramref name="takenReads"/> reads from its queue this turn and now holds
    /// <paramref name="heldWrites"/> and <paramref name="heldReads"/>. The held counts are published
    /// before the taken ones leave the queued counts, so no request is ever counted in neither.
    /// </summary>
    public void TurnEnded(int takenWrites, int takenReads, int heldWrites, int heldReads)
    {
        _heldWrites = heldWrites;
        _heldReads = heldReads;
        if (takenWrites != 0) Interlocked.Add(ref _queuedWrites, -takenWrites);
        if (takenReads != 0) Interlocked.Add(ref _queuedReads, -takenReads);
    }

    public WriteOutcome WritesRefused() =>
        new(OutcomeCode.ResourceExhausted, default, Consensus.SoftState.NoLeader, $"too many pending writes ({MaxWrites}); retry later");

    public ReadOutcome ReadsRefused() =>
        new(OutcomeCode.ResourceExhausted, false, null, null, false, Consensus.SoftState.NoLeader, $"too many pending reads ({MaxReads}); retry later");
}
