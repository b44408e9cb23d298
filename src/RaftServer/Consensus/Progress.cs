namespace RaftServer.Consensus;

/// <summary>How the leader is replicating to a peer (etcd's progress states).</summary>
internal enum ReplicationState
{
    /// <summary>Next is a guess: send one Append and wait for its answer before the next.</summary>
    Probe,
    /// <summary>Next is known to follow the peer's log: stream Appends optimistically, at most
    /// MaxInflightAppends unacknowledged.</summary>
    Replicate,
    /// <summary>The entries the peer needs are compacted away: a snapshot (at PendingSnapshot) is
    /// being transferred; no Appends until the driver reports the transfer's end
    /// (<see cref="RaftNode.ReportSnapshot"/>), the peer acknowledges it, or it times out.</summary>
    Snapshot,
}

/// <summary>
/// The leader's view of one member (Figure 2: nextIndex[], matchIndex[]), plus what it needs for
/// pipelining, check-quorum and read-index confirmation.
/// </summary>
internal sealed class Progress
{
    public Progress(int id, int maxInflight)
    {
        Id = id;
        Inflights = new Inflights(maxInflight);
    }

    public int Id { get; }
    /// <summary>Highest index known to be replicated on the peer.</summary>
    public long Match;
    /// <summary>Index of the next entry to send.</summary>
    public long Next;
    public ReplicationState State;
    /// <summary>Probe state: an Append is out and unanswered.</summary>
    public bool ProbeSent;
    /// <summary>Heard from since the last check-quorum round (§6.2 / thesis 6.2: check-quorum).</summary>
    public bool RecentlyActive;
    /// <summary>Heard from in the check-quorum round before the current one.</summary>
    public bool ActiveLastRound;
    /// <summary>Heard from within the last one to two election timeouts. Unlike
    /// <see cref="RecentlyActive"/> this does not drop to false for every peer the moment a
    /// check-quorum round starts, so decisions taken at any instant (may this member be removed?
    /// is it worth sending a snapshot?) do not refuse a healthy peer.</summary>
    public bool Reachable => RecentlyActive || ActiveLastRound;

    /// <summary>Acknowledged the commit index (as it was then) since the last check-quorum round.</summary>
    public bool CaughtUpThisRound;
    /// <summary>Acknowledged the commit index in the check-quorum round before the current one.</summary>
    public bool CaughtUpLastRound;
    /// <summary>
    /// The peer's log reached the leader's commit index within the last one to two election
    /// timeouts: it keeps pace with the cluster, so a learner may be promoted without stalling
    /// commits (thesis §4.2.1 asks that the last catch-up round take under an election timeout).
    /// "Match equals the commit index right now" is too strict: under steady writes the commit
    /// index moves on between the acknowledgement and the promotion.
    /// </summary>
    public bool CaughtUp => CaughtUpThisRound || CaughtUpLastRound;

    /// <summary>A check-quorum round ends: what was recent becomes last round's.</summary>
    public void StartActivityRound(bool isSelf)
    {
        ActiveLastRound = RecentlyActive;
        RecentlyActive = isSelf;
        CaughtUpLastRound = CaughtUpThisRound;
        CaughtUpThisRound = isSelf;
    }
    /// <summary>Highest read-index round the peer has acknowledged in this term.</summary>
    public long ReadRoundAcked;
    /// <summary>Highest commit index the peer can derive from what we sent it.</summary>
    public long CommitSent;
    public readonly Inflights Inflights;
    /// <summary>Snapshot state: the index of the snapshot being sent.</summary>
    public long PendingSnapshot;
    /// <summary>Snapshot state: ticks since the snapshot was sent (a lost transfer times out).</summary>
    public int SnapshotElapsed;

    public bool IsPaused => State switch
    {
        ReplicationState.Probe => ProbeSent,
        ReplicationState.Replicate => Inflights.Full,
        _ => true,
    };

    public void Reset(long next)
    {
        Match = 0;
        Next = next;
        State = ReplicationState.Probe;
        ProbeSent = false;
        RecentlyActive = false;
        ActiveLastRound = false;
        CaughtUpThisRound = false;
        CaughtUpLastRound = false;
        ReadRoundAcked = 0;
        CommitSent = 0;
        PendingSnapshot = 0;
        SnapshotElapsed = 0;
        Inflights.Reset();
    }

    public void BecomeProbe()
    {
        // Leaving Snapshot state after a transfer that succeeded: the peer holds the snapshot,
        // so probe just after it (etcd's rule).
        Next = State == ReplicationState.Snapshot ? Math.Max(Match, PendingSnapshot) + 1 : Match + 1;
        State = ReplicationState.Probe;
        ProbeSent = false;
        PendingSnapshot = 0;
        SnapshotElapsed = 0;
        Inflights.Reset();
    }

    /// <summary>Start sending the snapshot at <paramref name="index"/>: Appends stop until it ends.</summary>
    public void BecomeSnapshot(long index)
    {
        State = ReplicationState.Snapshot;
        ProbeSent = false;
        PendingSnapshot = index;
        SnapshotElapsed = 0;
        Next = index + 1;
        Inflights.Reset();
    }

    public void BecomeReplicate()
    {
        State = ReplicationState.Replicate;
        ProbeSent = false;
        PendingSnapshot = 0;
        SnapshotElapsed = 0;
        Next = Match + 1;
        Inflights.Reset();
    }

    /// <summary>An acknowledgement up to <paramref name="index"/>; false if it told us nothing new.</summary>
    public bool MaybeUpdate(long index)
    {
        bool updated = false;
        if (Match < index)
        {
            Match = index;
            ProbeSent = false;
            updated = true;
        }
        if (Next < index + 1) Next = index + 1;
        return updated;
    }

    /// <summary>
    /// A rejection of the Append whose previous index was <paramref name="rejected"/>; move Next back
    /// to <paramref name="hintNext"/> (from the conflict hint). False when the rejection is stale.
    /// </summary>
    /// <param name="logTooShort">the follower's log ends before <paramref name="rejected"/>
    /// (<paramref name="hintNext"/> is then just past its last entry).</param>
    public bool MaybeDecreaseTo(long rejected, long hintNext, bool logTooShort)
    {
        // A rejection of an Append sent before the snapshot: the snapshot supersedes it.
        if (State == ReplicationState.Snapshot) return false;
        // The follower's log ends before what it acknowledged: it lost its storage (a wiped or
        // restored data directory). Such an answer may also be an old one overtaken by later
        // acknowledgements; taking it costs only a new probe, ignoring a real loss would leave the
        // follower stuck forever (the leader would keep probing past its end).
        var lostLog = logTooShort && hintNext - 1 < Match;
        if (State == ReplicationState.Replicate)
        {
            // Everything up to Match is known to agree; a rejection below it is stale.
            if (rejected <= Match && !lostLog) return false;
            BecomeProbe();
        }
        // Probe: only the answer to the probe we sent (previous index Next - 1) counts.
        else if (Next - 1 != rejected && !lostLog) return false;

        if (lostLog)
        {
            // Catch it up from its real end (by snapshot if that is compacted away). Commit never
            // goes back, so counting fewer acknowledgements from now on is safe.
            Match = hintNext - 1;
            Next = hintNext;
        }
        else
            Next = Math.Max(Match + 1, Math.Min(rejected, hintNext));
        ProbeSent = false;
        return true;
    }

    public PeerProgress ToPublic() => new(Id, Match, Next, Reachable) { CaughtUp = CaughtUp, SendingSnapshot = State == ReplicationState.Snapshot ? PendingSnapshot : 0 };
}

/// <summary>A ring buffer of the last index of each Append in flight to one peer (bounded pipelining).</summary>
internal sealed class Inflights
{
    private readonly long[] buffer;
    private int start;

    public Inflights(int capacity) => buffer = new long[Math.Max(1, capacity)];

    public int Count { get; private set; }
    public bool Full => Count == buffer.Length;

    public void Add(long lastIndex)
    {
        if (Full) throw new InvalidOperationException("no room for another Append in flight");
        buffer[(start + Count) % buffer.Length] = lastIndex;
        Count++;
    }

    /// <summary>Frees every Append whose last index is at or below <paramref name="index"/>.</summary>
    public void FreeUpTo(long index)
    {
        while (Count > 0 && buffer[start] <= index)
        {
            start = (start + 1) % buffer.Length;
            Count--;
        }
    }

    /// <summary>Frees the oldest slot: a heartbeat answer proves the peer is alive, so an Append
    /// that was probably lost must not block the pipe forever.</summary>
    public void FreeFirst()
    {
        if (Count == 0) return;
        start = (start + 1) % buffer.Length;
        Count--;
    }

    public void Reset()
    {
        start = 0;
        Count = 0;
    }
}
