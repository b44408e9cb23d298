namespace RaftServer.Consensus;

public sealed record RaftOptions
{
    /// <summary>This node's id.</summary>
    public required int Id { get; init; }
    /// <summary>The voters of a new cluster, when <see cref="Bootstrap"/> is not given (ids only: tests).</summary>
    public IReadOnlyList<int> Members { get; init; } = [];
    /// <summary>
    /// The configuration a new cluster starts with (config.conf's nodes, all voters); used only
    /// while neither the log nor a snapshot holds a configuration. <see cref="Configuration.Empty"/>
    /// for a node that joins an existing cluster: it learns the configuration from the leader and
    /// never campaigns before it does.
    /// </summary>
    public Configuration? Bootstrap { get; init; }
    /// <summary>The first leader of a cluster whose log holds no configuration appends the
    /// bootstrap one (after its no-op), so restarts no longer depend on config.conf.</summary>
    public bool PersistBootstrapConfiguration { get; init; }
    /// <summary>Election timeout in ticks; each node draws its timeout from [ElectionTicks, 2*ElectionTicks).</summary>
    public int ElectionTicks { get; init; } = 10;
    /// <summary>A leader sends heartbeats every HeartbeatTicks.</summary>
    public int HeartbeatTicks { get; init; } = 1;
    public bool PreVote { get; init; } = true;
    public bool CheckQuorum { get; init; } = true;
    /// <summary>Append messages in flight per peer before the leader waits for acknowledgements.</summary>
    public int MaxInflightAppends { get; init; } = 64;
    /// <summary>Bytes of entry data per Append message (at least one entry is always sent).</summary>
    public long MaxAppendBytes { get; init; } = 1 << 20;
    /// <summary>
    /// Ticks after which a snapshot transfer the driver has not reported on
    /// (<see cref="RaftNode.ReportSnapshot"/>) counts as failed, so a lost transfer never wedges
    /// the peer; the leader then probes again (and resends the snapshot if still needed).
    /// 0: 5 election timeouts. Set it above the time a transfer of the largest snapshot takes, or
    /// have the driver report the outcome of every transfer.
    /// </summary>
    public int SnapshotTimeoutTicks { get; init; }
    /// <summary>The random source for election timeouts: seeded, so runs replay.</summary>
    public required Random Random { get; init; }
}

/// <summary>What a node had persisted when it (re)starts.</summary>
public sealed record PersistedState
{
    public HardState HardState { get; init; } = Consensus.HardState.Empty;
    /// <summary>The log after the snapshot, in index order, contiguous from SnapshotIndex + 1. The
    /// driver drops logged entries at or below the snapshot, and the whole log when its entry at
    /// SnapshotIndex has another term than SnapshotTerm or it ends before SnapshotIndex (a crash
    /// after installing a leader's snapshot, before the old log was discarded).</summary>
    public IReadOnlyList<Entry> Entries { get; init; } = [];
    /// <summary>Index and term of the last entry covered by the newest valid snapshot (0, 0 without
    /// one); the state machine is loaded from that snapshot before the core starts.</summary>
    public long SnapshotIndex { get; init; }
    public long SnapshotTerm { get; init; }
    /// <summary>The index the state machine has applied (the snapshot's, after a restart).</summary>
    public long Applied { get; init; }
    /// <summary>The configuration the snapshot recorded (null without a snapshot, or when it recorded none).</summary>
    public Configuration? SnapshotConfiguration { get; init; }

    public static readonly PersistedState Empty = new();
}

public enum ProposeOutcome
{
    Accepted,
    NotLeader,
    TransferInProgress,
    /// <summary>A configuration change: another one is appended and not yet committed (one at a time).</summary>
    ConfigChangeInProgress,
    /// <summary>A configuration change: this leader has not yet committed an entry of its term
    /// (until it has, an uncommitted change of an earlier leader may still be in its log).</summary>
    LeaderNotReady,
    /// <summary>A configuration change that is not one single-server change.</summary>
    InvalidChange,
    /// <summary>A promotion of a learner whose log is behind the commit index.</summary>
    LearnerBehind,
    /// <summary>A configuration change after which the voters this leader hears from would not be a majority.</summary>
    WouldLoseQuorum,
}

/// <summary>Result of Propose: on Accepted, the entry's index and term. Wait for that entry to be
/// applied; if another term's entry is applied at that index, the proposal was lost.</summary>
public readonly record struct ProposeResult(ProposeOutcome Outcome, long Index, long Term, int LeaderHint);

/// <summary>A peer's replication progress as the leader sees it (for Status).</summary>
public readonly record struct PeerProgress(int Id, long Match, long Next, bool RecentlyActive)
{
    /// <summary>The index of the snapshot being sent to the peer, 0 when none is.</summary>
    public long SendingSnapshot { get; init; }
    /// <summary>Whether the peer votes in the configuration in effect (a removed member being told of its removal does not).</summary>
    public bool IsVoter { get; init; }
}
