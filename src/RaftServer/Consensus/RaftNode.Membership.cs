namespace RaftServer.Consensus;

/// <summary>
/// Membership change, one server at a time (Raft dissertation §4.1, §4.2.2, §4.3): a
/// configuration is a log entry, in effect on every node as soon as it is appended (not when
/// it commits), so truncating it away restores the one before; a leader proposes one change
/// at a time, and only once it has committed an entry of its own term. Learners receive the log
/// and never vote, campaign or count for any quorum. A leader removed from the configuration
/// keeps leading (without counting itself) until the removal commits, then hands over.
/// </summary>
public sealed partial class RaftNode
{
    /// <summary>The configuration in effect (the last one the log holds, committed or not).</summary>
    public Configuration Configuration => config;

    /// <summary>The index of the entry that carries <see cref="Configuration"/> (the snapshot's index
    /// when it came from a snapshot; 0 for the bootstrap configuration).</summary>
    public long ConfigurationIndex => configIndex;

    /// <summary>Whether <see cref="Configuration"/> is committed (no change is in flight).</summary>
    public bool ConfigurationCommitted => configIndex <= log.Committed;

    /// <summary>The configuration in effect at <paramref name="index"/> (for a snapshot taken there).</summary>
    public Configuration ConfigurationAt(long index) => log.ConfigAt(index)?.Config ?? bootstrap;

    /// <summary>
    /// Proposes <paramref name="next"/> as the cluster's configuration: a single-server change of
    /// the one in effect (add a learner or a voter, promote a learner, remove a member). Accepted,
    /// it is appended and in effect at once; wait for its entry to be applied, as for a write.
    /// Refused while another change is uncommitted, before this leader has committed an entry of
    /// its term, for a learner whose log is behind, and when the voters of <paramref name="next"/>
    /// this leader has heard from within the election timeout would not be a majority of them (the
    /// cluster would stop).
    /// </summary>
    public ProposeResult ProposeConfiguration(Configuration next)
    {
        ArgumentNullException.ThrowIfNull(next);
        if (role != Role.Leader) return new ProposeResult(ProposeOutcome.NotLeader, 0, 0, leaderId);
        if (leadTransferee != SoftState.NoLeader) return new ProposeResult(ProposeOutcome.TransferInProgress, 0, 0, leadTransferee);
        if (!committedInTerm) return new ProposeResult(ProposeOutcome.LeaderNotReady, 0, 0, Id);
        if (configIndex > log.Committed) return new ProposeResult(ProposeOutcome.ConfigChangeInProgress, 0, 0, Id);
        if (next.ChangeFrom(config) is not { } change) return new ProposeResult(ProposeOutcome.InvalidChange, 0, 0, Id);
        if (change.Kind == ChangeKind.Promote && ProgressOf(change.Id) is { } learner && !learner.CaughtUp)
            return new ProposeResult(ProposeOutcome.LearnerBehind, 0, 0, Id);
        int reachable = 0;
        foreach (int voter in next.VoterIds)
            if (voter == Id || ProgressOf(voter) is { Reachable: true }) reachable++;
        // A voter not heard from yet in a leader's first election timeout may just not have
        // answered yet (a leader starts with no one marked active): retry soon, not refused.
        if (reachable < next.Quorum)
            return new ProposeResult(ticksLeading < options.ElectionTicks ? ProposeOutcome.LeaderNotReady : ProposeOutcome.WouldLoseQuorum, 0, 0, Id);

        var entry = new Entry(log.LastIndex + 1, term, EntryKind.Configuration, next.Encode());
        log.Append(entry);
        self.MaybeUpdate(entry.Index);
        SyncConfiguration();
        MaybeCommit();
        broadcastPending = true;
        return new ProposeResult(ProposeOutcome.Accepted, entry.Index, entry.Term, Id);
    }

    /// <summary>
    /// Brings the configuration in effect, the committed one and the replication targets in line
    /// with the log, after anything that may have changed them: an append (a configuration entry),
    /// a truncation (one taken away), a snapshot installed, the commit index moving. Cheap when
    /// nothing changed.
    /// </summary>
    private void SyncConfiguration(bool force = false)
    {
        var latest = log.LatestConfig;
        var committed = log.ConfigAt(log.Committed);
        var nextConfig = latest?.Config ?? bootstrap;
        var nextCommitted = committed?.Config ?? bootstrap;
        configIndex = latest?.Index ?? 0;
        if (!force && ReferenceEquals(nextConfig, config) && ReferenceEquals(nextCommitted, committedConfig)) return;
        // A member whose removal now commits is still replicated to until it holds the entry that
        // removes it, and sent heartbeats for an election timeout after, so that (if it is
        // reachable) it learns the removal is committed and stops standing for election.
        foreach (int id in committedConfig.Ids)
            if (!nextCommitted.Contains(id) && !nextConfig.Contains(id) && id != Id)
                departing[id] = new Departure(committed?.Index ?? log.Committed, DepartingPatienceTicks, Acknowledged: false);
        config = nextConfig;
        committedConfig = nextCommitted;
        RebuildProgress();
        // Not here: this may run in the middle of handling an acknowledgement, whose caller goes on
        // as the leader. The turn's end (FlushLeaderWork) hands over.
        handOverPending = role == Role.Leader && !config.IsVoter(Id) && configIndex <= log.Committed;
    }

    /// <summary>A leader removed by a committed configuration hands over at the end of the turn.</summary>
    private bool handOverPending;

    /// <summary>A member whose removal is committed and which this leader still sends to: the index
    /// of the entry that removed it, the ticks left, and whether it has acknowledged that entry.</summary>
    private readonly record struct Departure(long RemovalIndex, int TicksLeft, bool Acknowledged);

    /// <summary>Members whose removal is committed, still sent to (<see cref="TickDeparting"/>).</summary>
    private readonly Dictionary<int, Departure> departing = new();

    /// <summary>How long a removed member that has not acknowledged its removal is still sent to:
    /// long enough for a busy or lagging one to catch up, bounded for one that is down.</summary>
    private int DepartingPatienceTicks => 10 * options.ElectionTicks;

    /// <summary>
    /// Leader, each tick: a removed member is sent to until it has acknowledged the entry that
    /// removed it and then an election timeout more (heartbeats carry the commit index to it), or,
    /// if it never acknowledges, for <see cref="DepartingPatienceTicks"/>. A fixed election timeout
    /// from the commit was too short under load: the member could miss the entry and, not knowing
    /// it was removed, campaign forever in a cluster that ignores it.
    /// </summary>
    private void TickDeparting()
    {
        bool gone = false;
        foreach (var (id, d) in departing)
        {
            if (!d.Acknowledged && ProgressOf(id) is { } pr && pr.Match >= d.RemovalIndex)
                departing[id] = d with { TicksLeft = options.ElectionTicks, Acknowledged = true };
            else if (d.TicksLeft > 1) departing[id] = d with { TicksLeft = d.TicksLeft - 1 };
            else
            {
                departing.Remove(id);
                gone = true;
            }
        }
        if (gone) RebuildProgress();
    }

    /// <summary>One progress per member of the configuration in effect or of the committed one;
    /// existing progress is kept, a new member starts to be probed from the end of the log.</summary>
    private void RebuildProgress()
    {
        var ids = config.Ids.Union(committedConfig.Ids).Union(departing.Keys).Order().ToArray();
        var next = new Progress[ids.Length];
        var voters = new bool[ids.Length];
        int voterCount = 0;
        for (int i = 0; i < ids.Length; i++)
        {
            int id = ids[i];
            var existing = id == Id ? self : ProgressOf(id);
            if (existing is null)
            {
                existing = new Progress(id, options.MaxInflightAppends);
                existing.Reset(log.LastIndex + 1);
            }
            next[i] = existing;
            voters[i] = config.IsVoter(id);
            if (voters[i]) voterCount++;
        }
        members = ids;
        progress = next;
        isVoter = voters;
        matchScratch = new long[voterCount];
        if (leadTransferee != SoftState.NoLeader && !config.IsVoter(leadTransferee)) AbortTransfer();
    }

    /// <summary>
    /// A leader that is no longer a voter of the configuration in effect stops leading once that
    /// configuration is committed (dissertation §4.2.2): it first tells the most up-to-date voter to
    /// campaign at once (as a transfer does), so the cluster is not left waiting for an election
    /// timeout. Until the commit it leads without counting itself.
    /// </summary>
    private void HandOver()
    {
        handOverPending = false;
        int successor = SoftState.NoLeader;
        long best = -1;
        for (int i = 0; i < progress.Length; i++)
        {
            if (!isVoter[i] || progress[i] == self) continue;
            if (progress[i].Match > best)
            {
                best = progress[i].Match;
                successor = progress[i].Id;
            }
        }
        if (successor != SoftState.NoLeader && best == log.LastIndex) SendTimeoutNow(successor);
        BecomeFollower(term, SoftState.NoLeader);
    }

    /// <summary>Whether this node, as the leader, still sends to <paramref name="id"/>: a member of
    /// the configuration in effect or the committed one, or one whose removal committed less than
    /// an election timeout ago (the host keeps a link to such a node until this turns false).</summary>
    public bool LeaderSendsTo(int id) => role == Role.Leader && ProgressOf(id) is not null;

    /// <summary>Whether this node votes in the configuration in effect (a learner, a removed node
    /// or one that has not learned the configuration yet never campaigns).</summary>
    public bool IsVoter => config.IsVoter(Id);

    /// <summary>
    /// Whether this node may stand for election: it votes in the configuration in effect, or that
    /// configuration removes it but is not known to be committed while it voted in the committed one.
    /// The second case is the leader that appended its own removal and lost leadership before the
    /// removal committed: its log may be the only one holding the entry, so the other voters need
    /// its vote and it must be able to win, finish the change and hand over (counting votes by the
    /// configuration in effect, where its own does not count). Without it the cluster could wait
    /// forever.
    /// </summary>
    private bool CanCampaign => config.IsVoter(Id) || (configIndex > log.Committed && committedConfig.IsVoter(Id));
}
