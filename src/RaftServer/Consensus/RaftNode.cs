namespace RaftServer.Consensus;

/// <summary>
/// Raft as a deterministic state machine (model: etcd-io/raft's RawNode). No I/O, threads or
/// clocks: the driver calls Tick() on a timer, Step() for each received message, Propose() and
/// ReadIndex() for clients, and handles each Ready (persist, send, apply) before Advance().
/// The rules live in partial files beside this one: Election (§5.2, pre-vote, check-quorum),
/// Replication (§5.3, §5.4), ReadIndex (thesis §6.4), Transfer (thesis §3.10), Snapshot (§7).
/// Not thread-safe: one loop owns it.
/// </summary>
public sealed partial class RaftNode
{
    private readonly RaftOptions options;
    private readonly RaftLog log;

    // ---- membership (RaftNode.Membership.cs) ----
    /// <summary>The configuration of a new cluster, in effect until the log or a snapshot holds one.</summary>
    private readonly Configuration bootstrap;
    /// <summary>The configuration in effect: the last one the log holds, committed or not (dissertation §4.1).</summary>
    private Configuration config;
    /// <summary>The index of the entry that carries <see cref="config"/> (0: the bootstrap one).</summary>
    private long configIndex;
    /// <summary>The configuration in effect at the commit index.</summary>
    private Configuration committedConfig;
    /// <summary>The members replicated to: those of <see cref="config"/> and of <see cref="committedConfig"/>
    /// (a member being removed is still sent the log until its removal commits, so it learns of it).</summary>
    private int[] members = [];
    /// <summary>Progress of each of <see cref="members"/>, this node included when it is one.</summary>
    private Progress[] progress = [];
    /// <summary>Whether each of <see cref="members"/> votes in <see cref="config"/>.</summary>
    private bool[] isVoter = [];
    private readonly Progress self;
    private long[] matchScratch = [];

    private long term;
    private int votedFor;
    private int leaderId = SoftState.NoLeader;
    private Role role = Role.Follower;

    /// <summary>Ticks since the last election timeout reset (followers: since hearing from the
    /// leader or granting a vote; leader: since the last check-quorum round).</summary>
    private int electionElapsed;
    private int heartbeatElapsed;
    /// <summary>This round's timeout, drawn from [ElectionTicks, 2*ElectionTicks) (§5.2).</summary>
    private int randomizedElectionTimeout;
    private long tickCount;

    private List<Message> messages = new();
    private List<ReadState> readStates = new();
    private HardState lastHardState;
    private SoftState lastSoftState;
    private VoteGrant? voteGranted;
    /// <summary>The configuration the last Ready reported (a new one is reported in the next).</summary>
    private Configuration reportedConfig;

    public RaftNode(RaftOptions options, PersistedState persisted)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(persisted);
        if (options.ElectionTicks < 1 || options.HeartbeatTicks < 1 || options.HeartbeatTicks >= options.ElectionTicks)
            throw new ArgumentException("need 1 <= HeartbeatTicks < ElectionTicks");
        if (options.MaxInflightAppends < 1) throw new ArgumentException("MaxInflightAppends must be at least 1");
        if (options.Members.Distinct().Count() != options.Members.Count) throw new ArgumentException("duplicate member ids");

        this.options = options;
        bootstrap = options.Bootstrap ?? Configuration.FromVoters(options.Members);
        config = committedConfig = bootstrap;
        self = new Progress(options.Id, options.MaxInflightAppends);
        log = new RaftLog(persisted);
        term = persisted.HardState.Term;
        votedFor = persisted.HardState.VotedFor;
        SyncConfiguration(force: true);
        lastHardState = CurrentHardState;
        lastSoftState = CurrentSoftState;
        reportedConfig = config;
        ResetTimers();
    }

    public int Id => options.Id;
    public Role Role => role;
    public long Term => term;
    public int LeaderId => leaderId;
    public long CommitIndex => log.Committed;
    public long AppliedIndex => log.Applied;
    public long FirstIndex => log.FirstIndex;
    public long LastIndex => log.LastIndex;
    public long LastTerm => log.LastTerm;
    /// <summary>Index and term of the last entry covered by a snapshot (compaction).</summary>
    public long SnapshotIndex => log.SnapshotIndex;
    public long SnapshotTerm => log.SnapshotTerm;
    /// <summary>Every member's id in the configuration in effect.</summary>
    public IReadOnlyList<int> Members => config.Ids;
    /// <summary>The peer leadership is being handed to, or -1.</summary>
    public int LeadTransferee => leadTransferee;

    /// <summary>Each peer's progress while leader; empty otherwise.</summary>
    public IReadOnlyList<PeerProgress> Progress
    {
        get
        {
            if (role != Role.Leader) return [];
            var result = new PeerProgress[progress.Length];
            for (int i = 0; i < progress.Length; i++) result[i] = progress[i].ToPublic() with { IsVoter = isVoter[i] };
            return result;
        }
    }

    /// <summary>The entry at <paramref name="index"/> (FirstIndex..LastIndex), for tests and status.</summary>
    public Entry EntryAt(long index) =>
        index >= log.FirstIndex && index <= log.LastIndex ? log.At(index) : throw new ArgumentOutOfRangeException(nameof(index));

    /// <summary>Term of the entry at <paramref name="index"/>, or -1 when not in the log.</summary>
    public long TermAt(long index) => log.TermAt(index);

    private HardState CurrentHardState => new(term, votedFor, log.Committed);
    private SoftState CurrentSoftState => new(role, term, leaderId);
    /// <summary>A majority of the voters of the configuration in effect.</summary>
    private int Quorum => config.Quorum;
    /// <summary>Whether a node is replicated to (a member, or a member being removed).</summary>
    private bool IsMember(int id) => Array.IndexOf(members, id) >= 0;

    private Progress? ProgressOf(int id)
    {
        for (int i = 0; i < members.Length; i++)
            if (members[i] == id) return progress[i];
        return null;
    }

    /// <summary>One tick of the logical clock.</summary>
    public void Tick()
    {
        tickCount++;
        if (role == Role.Leader) TickLeader();
        else TickElection();
    }

    /// <summary>A message from a peer.</summary>
    public void Step(Message message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (message.To != Id || message.From == Id) return;
        if (!StepTerm(message)) return;

        switch (message.Type)
        {
            case MessageType.PreVote:
            case MessageType.Vote:
                HandleVoteRequest(message);
                return;
            case MessageType.ReadIndex:
                HandleReadIndexRequest(message);
                return;
        }

        switch (role)
        {
            case Role.Leader: StepLeader(message); break;
            case Role.Candidate:
            case Role.PreCandidate: StepCandidate(message); break;
            default: StepFollower(message); break;
        }
    }

    private void StepLeader(Message m)
    {
        var pr = ProgressOf(m.From);
        if (pr is null) return;
        switch (m.Type)
        {
            case MessageType.AppendResponse: HandleAppendResponse(pr, m); break;
            case MessageType.HeartbeatResponse: HandleHeartbeatResponse(pr, m); break;
        }
    }

    private void StepCandidate(Message m)
    {
        switch (m.Type)
        {
            case MessageType.Append:
            case MessageType.Heartbeat:
            case MessageType.Snapshot:
                // §5.2: a candidate that hears from a leader of its term returns to follower.
                BecomeFollower(m.Term, m.From);
                StepFollower(m);
                break;
            case MessageType.PreVoteResponse when role == Role.PreCandidate:
            case MessageType.VoteResponse when role == Role.Candidate:
                HandleVoteResponse(m);
                break;
        }
    }

    private void StepFollower(Message m)
    {
        switch (m.Type)
        {
            case MessageType.Append:
                electionElapsed = 0;
                SetLeader(m.From);
                HandleAppend(m);
                break;
            case MessageType.Heartbeat:
                electionElapsed = 0;
                SetLeader(m.From);
                HandleHeartbeat(m);
                break;
            case MessageType.Snapshot:
                electionElapsed = 0;
                SetLeader(m.From);
                HandleSnapshot(m);
                break;
            case MessageType.TimeoutNow:
                HandleTimeoutNow(m);
                break;
            case MessageType.ReadIndexResponse:
                HandleReadIndexResponse(m);
                break;
        }
    }

    private void Send(Message message) => messages.Add(message);

    private void ResetTimers()
    {
        electionElapsed = 0;
        heartbeatElapsed = 0;
        randomizedElectionTimeout = options.ElectionTicks + options.Random.Next(options.ElectionTicks);
    }

    // ---- Ready / Advance -------------------------------------------------------------------

    /// <summary>
    /// Ends the driver's turn: the leader emits the work it defers so that it is batched (one
    /// Append per peer for all the turn's proposals, one commit notice per peer for all the turn's
    /// acknowledgements, one heartbeat round for all the turn's reads). Call it once every queued
    /// event has been stepped, before asking for the Ready. (<see cref="GetReady"/> ends the turn
    /// too, so a driver that forgets loses batching, not messages.)
    /// </summary>
    public void EndTurn() => FlushLeaderWork();

    /// <summary>
    /// Whether there is a Ready to handle, counting the leader's deferred turn work
    /// (<see cref="EndTurn"/>) as such. Pure: asking changes nothing.
    /// </summary>
    public bool HasReady =>
        messages.Count > 0
        || log.FirstUnstable <= log.LastIndex
        || log.Delivered < log.Committed
        || readStates.Count > 0
        || voteGranted is not null
        || pendingSnapshot is not null
        || CurrentHardState != lastHardState
        || CurrentSoftState != lastSoftState
        || !ReferenceEquals(config, reportedConfig)
        || HasLeaderWork;

    /// <summary>
    /// Everything to persist, send and apply since the last Ready. Handing it out marks it as
    /// taken: the next Ready carries only what happened after this call.
    /// </summary>
    public Ready GetReady()
    {
        EndTurn();
        var hardState = CurrentHardState;
        var softState = CurrentSoftState;
        var entries = log.TakeUnstable();
        var ready = new Ready
        {
            HardState = hardState != lastHardState ? hardState : null,
            MustSync = hardState.Term != lastHardState.Term || hardState.VotedFor != lastHardState.VotedFor
                || entries.Length > 0 || pendingSnapshot is not null,
            Entries = entries,
            Messages = messages,
            CommittedEntries = log.TakeCommitted(),
            ReadStates = readStates,
            SoftState = softState != lastSoftState ? softState : null,
            VoteGranted = voteGranted,
            Snapshot = pendingSnapshot,
            SnapshotData = pendingSnapshotData,
            Configuration = ReferenceEquals(config, reportedConfig) ? null : config,
        };
        reportedConfig = config;
        pendingSnapshot = null;
        pendingSnapshotData = null;
        lastHardState = hardState;
        lastSoftState = softState;
        voteGranted = null;
        messages = new List<Message>();
        readStates = new List<ReadState>();
        return ready;
    }

    /// <summary>The driver has persisted, sent and applied everything in <paramref name="ready"/>.</summary>
    public void Advance(Ready ready)
    {
        ArgumentNullException.ThrowIfNull(ready);
        // The snapshot is installed: the state machine is at its index (never backwards).
        if (ready.Snapshot is { } snapshot)
            log.Applied = Math.Max(log.Applied, Math.Min(snapshot.Index, log.Committed));
        if (ready.CommittedEntries.Count > 0)
            log.Applied = Math.Max(log.Applied, ready.CommittedEntries[^1].Index);
    }

    /// <summary>
    /// Compaction hook: the driver has durably saved a snapshot of the state machine at
    /// <paramref name="index"/> (applied, so at most <see cref="AppliedIndex"/>); the core forgets
    /// the entries up to it, and the driver may then delete them from disk. From now on a peer
    /// that needs an entry at or below <paramref name="index"/> is sent a Snapshot message naming
    /// this snapshot (<see cref="CurrentSnapshot"/>): keep its data until a newer one is
    /// compacted to. Policy is the driver's (e.g. when <see cref="LogEntryCount"/> or
    /// <see cref="LogBytes"/> passes a threshold); compacting a little below the applied index
    /// lets slightly lagging followers catch up by Append rather than by snapshot.
    /// </summary>
    public void Compact(long index)
    {
        log.CompactTo(index);
        SyncConfiguration();
    }
}
