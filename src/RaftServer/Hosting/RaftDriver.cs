using Microsoft.Extensions.Logging;
using RaftServer.Cluster;
using RaftServer.Consensus;
using RaftServer.StateMachine;
using RaftServer.Transport;

namespace RaftServer.Hosting;

/// <summary>Timeouts of the driver, in loop ticks.</summary>
/// <param name="ReadTicks">A read whose read index has not come back after this long is failed.</param>
/// <param name="WriteTicks">A write not applied after this long is failed.</param>
public sealed record DriverTimeouts(long ReadTicks, long WriteTicks)
{
    /// <summary>A write waiting longer than this is answered Unavailable (the client retries with its session).</summary>
    public static readonly TimeSpan MaxWriteWait = TimeSpan.FromSeconds(10);

    public static DriverTimeouts For(int heartbeatMs, int electionTicks) =>
        new(4L * electionTicks, (long)(MaxWriteWait.TotalMilliseconds / heartbeatMs));
}

/// <summary>
/// The driver of the consensus core: it owns the <see cref="RaftNode"/> and the state machine
/// (<see cref="KvStore"/>), handles every <see cref="LoopEvent"/>, and handles each
/// <see cref="Ready"/> in the order the core's contract fixes (<see cref="ProcessReady"/>). It
/// runs on the node loop's thread (<see cref="NodeLoop"/>) but owns no thread, socket or file
/// itself: the log, the peers, the inbound sockets and the snapshots are ports
/// (DriverPorts.cs), and time comes from the clock it is given, so tests run it in-process,
/// turn by turn, with fakes, and the simulator runs it with its simulated disk and network.
/// </summary>
public sealed partial class RaftDriver : ILoopEventHandler
{
    /// <summary>Reads of a Range reply carry about this many bytes at most.</summary>
    public const int RangeMaxBytes = 2 << 20;
    /// <summary>A Ready that takes this long (most of an election timeout at the defaults) is reported.</summary>
    private const long SlowReadyMs = 100;

    private readonly Func<RaftOptions> _options;
    private readonly Membership _membership;
    private readonly ILogStore _log;
    private readonly IMessageSender _sender;
    private readonly IPeerSockets _sockets;
    private readonly ISnapshotPort _snapshots;
    private readonly Func<RecoveredNode> _reopen;
    private readonly Func<long> _nowMs;
    private readonly ILogger _logger;
    private readonly PendingRequests _pending;

    private RaftNode _node = null!;
    /// <summary>The core's ReadIndex, as a delegate made once per core (asked every turn).</summary>
    private Func<long, bool> _readIndex = null!;
    private KvStore _kv = null!;
    private SoftState _soft;
    private long _appliedTerm;
    private int _lastVote = HardState.NoVote;
    private long _lastVoteTerm = -1;
    private long _ticks;
    private int _electionTicks;
    private readonly List<Message> _earlyMessages = new();
    private readonly List<Message> _lateMessages = new();

    private bool _suspended;
    /// <summary>This Ready took leadership away: fail the writes still waiting after applying.</summary>
    private bool _leadershipLost;
    private long _resumeAtMs;
    private double _suspendSeconds;
    private volatile NodeView _view = new(Role.Follower, 0, SoftState.NoLeader, false);

    private long _lastSlowReport = -10_000;
    private long _lastSaveMs;
    private int _gen2Seen = GC.CollectionCount(2);

    /// <param name="options">Makes the core's options at each (re)start (the voters come from the membership).</param>
    /// <param name="reopen">Rereads the data directory, as a restart would (resume after Suspend).</param>
    /// <param name="nowMs">A monotonic clock in milliseconds (suspend, slow-Ready reports).</param>
    public RaftDriver(Func<RaftOptions> options, Membership membership, ILogStore log, IMessageSender sender, IPeerSockets sockets,
        ISnapshotPort snapshots, Func<RecoveredNode> reopen, DriverTimeouts timeouts, Func<long> nowMs, ILogger logger)
    {
        _options = options;
        _membership = membership;
        _log = log;
        _sender = sender;
        _sockets = sockets;
        _snapshots = snapshots;
        _reopen = reopen;
        _nowMs = nowMs;
        _logger = logger;
        _pending = new PendingRequests(timeouts.ReadTicks, timeouts.WriteTicks, Answer);
    }

    public RaftNode Node => _node;
    public KvStore State => _kv;
    public PendingRequests Pending => _pending;
    /// <summary>Published after every change of role, term, leader or suspension; any thread may read it.</summary>
    public NodeView View => _view;
    public bool Suspended => _suspended;
    public long Ticks => _ticks;
    /// <summary>When a suspended node resumes (the loop's clock); meaningful only while <see cref="Suspended"/>.</summary>
    public long ResumeAtMs => _resumeAtMs;
    /// <summary>Called for each entry as it is applied, with its result (tests, the simulator's checks).</summary>
    public Action<Entry, ApplyResult>? EntryApplied { get; set; }

    /// <summary>Gives the cluster its id and adopts it as it commits (null in tests that do without).</summary>
    public ClusterIdKeeper? ClusterId { get; set; }

    /// <summary>Whether <see cref="ProcessReady"/> has work (pure: asking changes nothing).</summary>
    public bool HasReady => !_suspended && _node.HasReady;

    /// <summary>Builds the core and the state machine from what the node recovered from disk.</summary>
    public void Start(RecoveredNode recovered)
    {
        _kv = recovered.Store;
        _appliedTerm = recovered.State.SnapshotTerm;
        _snapshots.Restarted(recovered);
        var options = _options();
        _electionTicks = options.ElectionTicks;
        _node = new RaftNode(options, recovered.State);
        _readIndex = _node.ReadIndex;
        _soft = new SoftState(_node.Role, _node.Term, _node.LeaderId);
        _lastVote = recovered.State.HardState.VotedFor;
        _lastVoteTerm = recovered.State.HardState.Term;
        Log.Follower(_logger, _node.Term);
        OnConfiguration(_node.Configuration);
        Publish();
        Restarted();
    }

    // ---- the turn ----

    /// <summary>After the turn's events: the linearizable reads that arrived share one read-index request.</summary>
    public void StartReads()
    {
        if (!_suspended) _pending.StartReadBatch(_readIndex, _ticks, LeaderHint());
    }

    /// <summary>One tick of the core's clock (the heartbeat period), and the requests' safety nets.</summary>
    public void Tick()
    {
        if (_suspended) return;
        _ticks++;
        _node.Tick();
        ClusterId?.Tick(_node);
        ExpireLeases();
        if ((_ticks & 7) == 0) _pending.Expire(_ticks, LeaderHint());
        if (_transfers.Count > 0) ExpireTransfers();
        if (_membership.Departing.Count > 0) ForgetDeparted();
    }

    /// <summary>Closes the links to removed members the core no longer sends to.</summary>
    private void ForgetDeparted()
    {
        var departing = _membership.Departing;
        var still = departing.Where(m => _node.LeaderSendsTo(m.Id)).ToArray();
        if (still.Length != departing.Count) _membership.Update(_membership.Current, still);
    }

    /// <summary>Ends the turn for the core: a leader emits its batched work (one Append per peer for
    /// all the turn's proposals, commit notices, one heartbeat round for the turn's reads).</summary>
    public void EndTurn()
    {
        if (!_suspended) _node.EndTurn();
    }

    /// <summary>
    /// Handles one Ready, if there is one, then Advances the core. The order is the core's contract
    /// (<see cref="Ready"/>): role changes; a leader's snapshot installed before anything else;
    /// snapshot transfers started; hard state and entries persisted with one fsync, the messages
    /// sent (a leader's appends and heartbeats before that fsync, everything else after it);
    /// committed entries applied, each answering the write waiting on it; reads answered once
    /// their index is applied; a snapshot taken if the policy says so.
    /// </summary>
    public bool ProcessReady()
    {
        if (!HasReady) return false;
        var rd = _node.GetReady();
        var started = _nowMs();
        HandleReady(rd);
        _node.Advance(rd);
        var ms = _nowMs() - started;
        if (ms >= SlowReadyMs) ReportSlowReady(rd, ms);
        return true;
    }

    private void HandleReady(Ready rd)
    {
        if (rd.SoftState is { } soft) OnSoftState(soft);
        // Before anything is sent: the transport opens links to new members from the membership.
        if (rd.Configuration is { } configuration) OnConfiguration(configuration);
        _lastSaveMs = 0;
        if (rd.Snapshot is { } snapshot) InstallSnapshot(snapshot, rd.SnapshotData);
        _snapshots.DropUnclaimed(rd.SnapshotData);
        _snapshots.SendSnapshots(rd.Messages);
        PersistAndSend(rd);
        if (rd.HardState is { } hs && hs.VotedFor != HardState.NoVote && (hs.VotedFor != _lastVote || hs.Term != _lastVoteTerm))
        {
            _lastVote = hs.VotedFor;
            _lastVoteTerm = hs.Term;
            Log.VotedFor(_logger, hs.VotedFor);
        }

        var committed = rd.CommittedEntries;
        var hint = LeaderHint();
        for (var i = 0; i < committed.Count; i++)
        {
            var e = committed[i];
            var result = _kv.Apply(e);
            if (e.Kind == EntryKind.Configuration) RefuseCommittedRemovals(_node.ConfigurationAt(e.Index));
            ClusterId?.Applied(e);
            _appliedTerm = e.Term;
            Applied();
            _pending.Applied(e, result, hint);
            EntryApplied?.Invoke(e, result);
        }

        if (_leadershipLost)
        {
            // Our proposals not applied yet may or may not survive under the new leader: answer
            // them Unavailable now; a retry with the same client id and sequence applies at most once.
            _leadershipLost = false;
            _pending.FailWrites("leadership lost before the write committed", _soft.LeaderId);
        }

        if (committed.Count > 0) AppliedAll();
        var states = rd.ReadStates;
        for (var i = 0; i < states.Count; i++) _pending.ReadIndexDone(states[i], _kv.AppliedIndex, hint, _ticks);
        if (committed.Count > 0 || rd.Snapshot is not null) _pending.AnswerApplied(_kv.AppliedIndex);
        if (committed.Count > 0) _snapshots.AfterApply(_node, _kv, _appliedTerm);
    }

    /// <summary>
    /// Step 1 and 2 of the Ready. What must be durable before a message that depends on it leaves:
    /// a vote before the VoteResponse, entries before the AppendResponse that acknowledges them.
    /// A leader's own appends and heartbeats may leave before its fsync (Raft thesis 10.2.1): the
    /// followers write in parallel with it. That is safe when the Ready changes neither term nor
    /// vote (both are then already durable) and does not commit its own entries: an
    /// acknowledgement can only be handled in a later turn, after this Save has returned, so
    /// nothing commits before the leader's copy is on disk. The exception is a leader that is its
    /// own majority (the only voter): it commits an entry as it appends it, and an Append sent
    /// before the fsync would carry that commit index to learners, which would apply an entry a
    /// crash of the leader could still lose. A Ready whose only change is the commit index is
    /// written without an fsync (<see cref="Ready.MustSync"/>).
    /// </summary>
    private void PersistAndSend(Ready rd)
    {
        if (!rd.MustSync)
        {
            if (rd.HardState is { } commitOnly) _log.Save(commitOnly, [], sync: false);
            _sender.Send(rd.Messages);
            return;
        }
        var durable = _log.HardState;
        var early = rd.Messages.Count > 0 && _soft.Role == Role.Leader &&
            (rd.HardState is not { } next || (next.Term == durable.Term && next.VotedFor == durable.VotedFor
                && (rd.Entries.Count == 0 || next.Commit < rd.Entries[0].Index)));
        if (early)
        {
            for (var i = 0; i < rd.Messages.Count; i++)
            {
                var m = rd.Messages[i];
                (m.Type is MessageType.Append or MessageType.Heartbeat ? _earlyMessages : _lateMessages).Add(m);
            }
            _sender.Send(_earlyMessages);
            _earlyMessages.Clear();
        }
        var saveStarted = _nowMs();
        _log.Save(rd.HardState, rd.Entries, sync: true);
        _lastSaveMs = _nowMs() - saveStarted;
        if (early)
        {
            _sender.Send(_lateMessages);
            _lateMessages.Clear();
        }
        else
            _sender.Send(rd.Messages);
    }

    private void InstallSnapshot(SnapshotMetadata meta, object? data)
    {
        // The snapshot is made this node's durable one first, then the log it replaces is
        // discarded: a crash between the two is repaired at restart (RecoveryPlan drops a log
        // that does not continue the snapshot).
        var store = _snapshots.Install(meta, data);
        _log.Reset(meta.Index);
        _kv = store;
        _appliedTerm = meta.Term;
        RefuseCommittedRemovals(meta.Configuration);
        StoreReplaced();
        // Writes proposed while this node led and now covered by the snapshot: their outcome is
        // unknown here (the client retries with its session, which answers exactly once).
        _pending.FailWritesThrough(meta.Index, "the node installed a snapshot; the outcome is unknown, retry", LeaderHint());
    }

    private void OnSoftState(SoftState s)
    {
        var before = _soft;
        _soft = s;
        if (s.Role != before.Role || s.Term != before.Term)
        {
            switch (s.Role)
            {
                case Role.Follower:
                    Log.Follower(_logger, s.Term);
                    break;
                case Role.PreCandidate:
                    if (before.Role == Role.Follower) Log.LeaderDead(_logger);
                    Log.PreCandidate(_logger, s.Term);
                    break;
                case Role.Candidate:
                    if (before.Role == Role.Follower) Log.LeaderDead(_logger);
                    Log.Candidate(_logger, s.Term);
                    break;
                case Role.Leader:
                    Log.VotesReceived(_logger);
                    Log.Leader(_logger, s.Term);
                    break;
            }
        }
        if (s.LeaderId != before.LeaderId && s.LeaderId != SoftState.NoLeader && s.Role != Role.Leader)
            Log.LeaderIs(_logger, s.LeaderId, s.Term);

        if (before.Role == Role.Leader && s.Role != Role.Leader)
        {
            // The waiting writes fail once this Ready's committed entries have answered theirs
            // (a leader that steps down in the turn its entries commit still answers them Ok).
            _leadershipLost = true;
            _snapshots.CancelTransfers();
            LeadershipLost();
        }
        if (_transfers.Count > 0 && s.Role != Role.Leader && s.LeaderId != SoftState.NoLeader) CompleteTransfers(s);
        Publish();
    }

    private void ReportSlowReady(Ready rd, long ms)
    {
        var gen2 = GC.CollectionCount(2);
        var now = _nowMs();
        if (now - _lastSlowReport >= 1000)
        {
            _lastSlowReport = now;
            long bytes = 0;
            foreach (var e in rd.Entries) bytes += e.Data.Length;
            _logger.LogWarning("Handling one batch took {Ms} ms (disk {SaveMs} ms for {Entries} entries, {Bytes} bytes; {Messages} messages; {Applied} applied; {Gen2} full GCs since the last report)",
                ms, _lastSaveMs, rd.Entries.Count, bytes, rd.Messages.Count, rd.CommittedEntries.Count, gen2 - _gen2Seen);
        }
        _gen2Seen = gen2;
    }

    // ---- events ----

    /// <summary>A batch of messages from one peer (read by the loop off its connection, or a received snapshot).</summary>
    public void Receive(List<Message> messages)
    {
        foreach (var m in messages)
            if (m.SnapshotData is { } data) _snapshots.Received(data);
        if (_suspended)
        {
            _snapshots.DropUnclaimed(null);
            return;
        }
        foreach (var m in messages)
        {
            try
            {
                _node.Step(m);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException)
            {
                _logger.LogWarning("Dropped a {Type} message from node {From}: {Error}", m.Type, m.From, e.Message);
            }
        }
    }

    public void Handle(MessagesReceived e) => Receive(e.Messages);

    public void Handle(WriteRequested e) => Propose(e.Write);

    public void Handle(WritesRequested e)
    {
        foreach (var w in e.Writes) Propose(w);
    }

    private void Propose(PendingWrite w)
    {
        if (_suspended)
        {
            w.TrySetResult(PendingRequests.Unavailable("the node is suspended", SoftState.NoLeader));
            return;
        }
        if (RefusedForQuota(w)) return;
        var r = _node.Propose(w.Data);
        switch (r.Outcome)
        {
            case ProposeOutcome.Accepted:
                _pending.AddWrite(w, r.Index, r.Term, _ticks);
                break;
            case ProposeOutcome.NotLeader:
                w.TrySetResult(new WriteOutcome(OutcomeCode.NotLeader, default, r.LeaderHint, $"node {_node.Id} is no longer the leader"));
                break;
            default:
                w.TrySetResult(PendingRequests.Unavailable("leadership transfer in progress", LeaderHint()));
                break;
        }
    }

    public void Handle(ReadRequested e)
    {
        var read = e.Read;
        if (_suspended) read.TrySetResult(PendingRequests.ReadFailed("the node is suspended", SoftState.NoLeader));
        else if (read.Stale) Answer(read);
        else _pending.AddRead(read);
    }

    public void Handle(StatusRequested e) => e.Reply.TrySetResult(Status());

    public void Handle(SuspendRequested e)
    {
        if (_suspended) return;
        Log.Sleeping(_logger, e.Seconds);
        _suspended = true;
        _suspendSeconds = e.Seconds;
        _resumeAtMs = _nowMs() + (long)(e.Seconds * 1000);
        Publish();
        _sender.Pause();
        _sockets.CloseAll(); // peers reconnect when this node resumes
        _snapshots.CancelTransfers();
        FailAll("the node is suspended");
        Suspending();
    }

    /// <summary>Resumes a suspended node once its time is up: from durable state only, as a
    /// process restart would (the log reread, the state machine rebuilt from snapshot and log).</summary>
    public void ResumeIfDue()
    {
        if (!_suspended || _nowMs() < _resumeAtMs) return;
        var recovered = _reopen();
        _suspended = false;
        _sender.Resume();
        Log.Resumed(_logger, _suspendSeconds);
        Start(recovered);
    }

    public void Handle(PeerConnected e)
    {
        if (_suspended)
        {
            e.Socket?.Dispose();
            e.Tls?.Dispose();
        }
        else if (e.Tls is { } tls) _sockets.AddTls(tls, e.PeerId);
        else _sockets.Add(e.Socket!, e.PeerId);
    }

    /// <summary>Only timers and the lease change on this hint (docs/design.md, "Fail-over").</summary>
    public void Handle(PeerUnreachable e)
    {
        if (!_suspended) _node.LeaderUnreachable(e.PeerId);
    }

    public void Handle(SnapshotSaved e) => _snapshots.Saved(e, _suspended ? null : _node);

    public void Handle(SnapshotSaveFailed e) => _snapshots.SaveFailed(e);

    /// <exception cref="DiskFailureException">always: the loop stops the node.</exception>
    public void Handle(DiskFailed e) => throw e.Error as Storage.DiskFailureException ?? new Storage.DiskFailureException(e.Error.Message, e.Error);

    public void Handle(SnapshotTransferEnded e)
    {
        if (!_suspended) _node.ReportSnapshot(e.Peer, e.Success);
    }

    // ---- membership ----

    private Configuration? _announced;
    /// <summary>A configuration this node has seen listed it (so one that does not is its removal).</summary>
    private bool _wasMember;

    /// <summary>
    /// The transport refuses a removed member (its connections and batches: <see cref="Membership.IsGone"/>)
    /// only once its removal is committed, i.e. applied here. A removal that is only appended can
    /// still be overwritten by a leader that never had it, the "removed" node itself among the
    /// possible ones: refusing that node would leave this node deaf to its leader, and so keep the
    /// entry that should be overwritten for good.
    /// </summary>
    private void RefuseCommittedRemovals(Configuration committed) =>
        _membership.Update(_membership.Current, _membership.Departing, committed.RemovedIds.ToHashSet());

    /// <summary>The configuration in effect changed (or the core started): the runtime membership
    /// follows it, so the transport connects to new members and drops removed ones. An empty
    /// configuration (a node that joins and has not heard from the leader yet) leaves the
    /// membership it was started with.</summary>
    private void OnConfiguration(Configuration configuration)
    {
        if (configuration.Count == 0) return;
        var previous = _membership.Current;
        var next = MemberSet.FromConfiguration(configuration, previous);
        // A leader goes on sending to a member it removes until the removal is committed and a
        // while after (the core decides, LeaderSendsTo): keep its link until then.
        var departing = _membership.Departing.Concat(previous.Members)
            .Where(m => m.Id != _membership.Self && !next.Contains(m.Id) && _node.LeaderSendsTo(m.Id))
            .DistinctBy(m => m.Id).ToArray();
        _membership.Update(next, departing, _node.ConfigurationAt(_kv.AppliedIndex).RemovedIds.ToHashSet());
        if (configuration.Equals(_announced)) return;
        _announced = configuration;
        Log.Members(_logger, _membership.Current.ToString());
        if (configuration.Find(_membership.Self) is not { } me)
        {
            // A joining node replays configurations from before it was added: that is no removal.
            if (!_wasMember) Log.NotYetAMember(_logger);
            else
            {
                _wasMember = false;
                Log.NotAMember(_logger);
                NoLongerAMember();
            }
            return;
        }
        _wasMember = true;
        if (me.Role == MemberRole.Learner) Log.IsLearner(_logger);
    }

    public void Handle(MemberChangeRequested e)
    {
        var w = e.Write;
        if (_suspended)
        {
            w.TrySetResult(PendingRequests.Unavailable("the node is suspended", SoftState.NoLeader));
            return;
        }
        if (_node.Role != Role.Leader)
        {
            w.TrySetResult(new WriteOutcome(OutcomeCode.NotLeader, default, _node.LeaderId, $"node {_node.Id} is not the leader"));
            return;
        }
        var current = _node.Configuration;
        if (NextConfiguration(current, e) is not { } next) return;
        var r = _node.ProposeConfiguration(next);
        switch (r.Outcome)
        {
            case ProposeOutcome.Accepted:
                _pending.AddWrite(w, r.Index, r.Term, _ticks);
                break;
            case ProposeOutcome.ConfigChangeInProgress:
                Refuse(w, OutcomeCode.FailedPrecondition, $"another membership change (index {_node.ConfigurationIndex}) is not committed yet; one change at a time");
                break;
            case ProposeOutcome.LearnerBehind:
                Refuse(w, OutcomeCode.FailedPrecondition, $"node {e.Id} has not caught up with the log yet (a learner is promoted once its log has reached the commit index within the last election timeout or two)");
                break;
            case ProposeOutcome.WouldLoseQuorum:
                Refuse(w, OutcomeCode.FailedPrecondition, $"after this change the voters the leader can reach would not be a majority of [{next}]: the cluster would stop");
                break;
            case ProposeOutcome.InvalidChange:
                Refuse(w, OutcomeCode.FailedPrecondition, "not a single-server change");
                break;
            case ProposeOutcome.NotLeader:
                w.TrySetResult(new WriteOutcome(OutcomeCode.NotLeader, default, r.LeaderHint, $"node {_node.Id} is not the leader"));
                break;
            default: // a transfer in progress, or no entry of this term committed yet: retry soon
                w.TrySetResult(PendingRequests.Unavailable(r.Outcome == ProposeOutcome.TransferInProgress
                    ? "leadership transfer in progress" : "the leader is new: it has not committed an entry of its term or heard from every voter yet", LeaderHint()));
                break;
        }
    }

    /// <summary>The configuration the change asks for, or null (and the request refused) when it
    /// names no member that exists, or one that does. Members without an address (a snapshot
    /// written before snapshots carried them) get the membership's, so the log carries them on.</summary>
    private Configuration? NextConfiguration(Configuration current, MemberChangeRequested e)
    {
        var members = current.Members.Select(m => m.Host.Length > 0 || _membership.Find(m.Id) is not { } known
            ? m : m with { Host = known.Address.Host, Port = known.Address.Port }).ToList();
        current = new Configuration(members, current.RemovedIds);
        var existing = current.Find(e.Id);
        switch (e.Kind)
        {
            case ChangeKind.AddLearner or ChangeKind.AddVoter:
                if (existing is not null)
                    return Refuse(e.Write, OutcomeCode.AlreadyExists, $"node {e.Id} is already a member ({existing.Role.ToString().ToLowerInvariant()} at {NodeAddress.Format(existing.Host, existing.Port)})");
                if (current.WasRemoved(e.Id))
                    return Refuse(e.Write, OutcomeCode.FailedPrecondition, $"node {e.Id} was removed from this cluster and ids are not reused: add the replacement under a new id");
                if (members.FirstOrDefault(m => m.Port == e.Port && string.Equals(m.Host, e.Host, StringComparison.OrdinalIgnoreCase)) is { } clash)
                    return Refuse(e.Write, OutcomeCode.AlreadyExists, $"{NodeAddress.Format(e.Host, e.Port)} is node {clash.Id}'s address");
                return current.With(new ConfigChange(e.Kind, e.Id),
                    new ConfigMember(e.Id, e.Kind == ChangeKind.AddVoter ? MemberRole.Voter : MemberRole.Learner, e.Host, e.Port));
            case ChangeKind.Promote:
                if (existing is null) return Refuse(e.Write, OutcomeCode.NotFound, $"node {e.Id} is not a member");
                if (existing.IsVoter) return AlreadyDone(e.Write); // a retry of a promotion that happened
                return current.With(new ConfigChange(ChangeKind.Promote, e.Id));
            default:
                if (current.WasRemoved(e.Id)) return AlreadyDone(e.Write); // a retry of a removal that happened
                if (existing is null) return Refuse(e.Write, OutcomeCode.NotFound, $"node {e.Id} is not a member");
                return current.With(new ConfigChange(ChangeKind.Remove, e.Id));
        }
    }

    /// <summary>The change asked for is already in effect: answered Ok with the configuration's index.</summary>
    private Configuration? AlreadyDone(PendingWrite w)
    {
        w.TrySetResult(new WriteOutcome(OutcomeCode.Ok, new WriteResult(_node.ConfigurationIndex, false), SoftState.NoLeader, null));
        return null;
    }

    private static Configuration? Refuse(PendingWrite w, OutcomeCode code, string reason)
    {
        w.TrySetResult(new WriteOutcome(code, default, SoftState.NoLeader, reason));
        return null;
    }

    private readonly List<TransferRequested> _transfers = new();

    public void Handle(TransferRequested e)
    {
        TransferOutcome Fail(OutcomeCode code, string reason, int hint = SoftState.NoLeader) => new(code, hint, _node.Term, reason);
        if (_suspended)
        {
            e.Reply.TrySetResult(Fail(OutcomeCode.Unavailable, "the node is suspended"));
            return;
        }
        if (_node.Role != Role.Leader)
        {
            e.Reply.TrySetResult(Fail(OutcomeCode.NotLeader, $"node {_node.Id} is not the leader", _node.LeaderId));
            return;
        }
        if (e.Target is { } target)
        {
            if (target == _node.Id)
            {
                e.Reply.TrySetResult(new TransferOutcome(OutcomeCode.Ok, _node.Id, _node.Term, null));
                return;
            }
            if (_node.Configuration.Find(target) is not { } member)
            {
                e.Reply.TrySetResult(Fail(OutcomeCode.NotFound, $"node {target} is not a member"));
                return;
            }
            if (!member.IsVoter)
            {
                e.Reply.TrySetResult(Fail(OutcomeCode.FailedPrecondition, $"node {target} is a learner: only a voter can lead"));
                return;
            }
        }
        if (!_node.TransferLeadership(e.Target))
        {
            e.Reply.TrySetResult(Fail(OutcomeCode.FailedPrecondition, "there is no other voter to hand leadership to"));
            return;
        }
        // The core gives up after an election timeout; a little more here, to hear of the outcome.
        e.DeadlineTick = _ticks + 2L * _electionTicks;
        _transfers.Add(e);
    }

    /// <summary>This node follows a new leader: the transfers it was asked for are done.</summary>
    private void CompleteTransfers(SoftState s)
    {
        foreach (var t in _transfers) t.Reply.TrySetResult(new TransferOutcome(OutcomeCode.Ok, s.LeaderId, s.Term, null));
        _transfers.Clear();
    }

    private void ExpireTransfers()
    {
        var stillLeading = _node.Role == Role.Leader;
        _transfers.RemoveAll(t =>
        {
            // Still leading with no transfer under way: the core gave up (the target did not catch up or win).
            if (_ticks < t.DeadlineTick && !(stillLeading && _node.LeadTransferee == SoftState.NoLeader)) return false;
            t.Reply.TrySetResult(new TransferOutcome(OutcomeCode.Unavailable, LeaderHint(), _node.Term, "the transfer did not complete; leadership stayed or is being decided"));
            return true;
        });
    }

    public void Handle(ResumeRequested e)
    {
        if (_suspended) _resumeAtMs = _nowMs();
    }

    // ---- answers ----

    private void Answer(PendingRead read)
    {
        if (read.KeepAliveLease != 0)
        {
            AnswerKeepAlive(read);
        }
        else if (read.IsRange)
        {
            var items = _kv.Range(read.Prefix, read.StartAfter, read.Limit, RangeMaxBytes, out var more);
            read.TrySetResult(new ReadOutcome(OutcomeCode.Ok, false, null, items, more, SoftState.NoLeader, null, default, _kv.Revision));
        }
        else
        {
            var found = _kv.TryGetItem(read.Key, out var item);
            read.TrySetResult(new ReadOutcome(OutcomeCode.Ok, found, item.Value, null, false, SoftState.NoLeader, null, item, _kv.Revision));
        }
    }

    /// <summary>Answers every waiting request Unavailable (stopping, or the loop failed).</summary>
    public void FailAll(string reason)
    {
        _pending.FailAll(reason, LeaderHint());
        foreach (var t in _transfers) t.Reply.TrySetResult(new TransferOutcome(OutcomeCode.Unavailable, SoftState.NoLeader, 0, reason));
        _transfers.Clear();
    }

    public NodeStatus Status()
    {
        var members = _membership.Current;
        var peers = new List<PeerStatus>();
        if (_node.Role == Role.Leader)
            foreach (var p in _node.Progress)
            {
                if (p.Id == _node.Id) continue;
                // The core's view, so Status says "reachable" exactly when a membership change counts the peer as reachable.
                peers.Add(new PeerStatus(p.Id, p.Match, p.Next, p.Reachable, p.IsVoter, p.CaughtUp));
            }
        return new NodeStatus
        {
            Id = _node.Id,
            Role = _node.Role,
            Term = _node.Term,
            Leader = _node.LeaderId == SoftState.NoLeader ? null : members.Find(_node.LeaderId),
            CommitIndex = _node.CommitIndex,
            AppliedIndex = _kv.AppliedIndex,
            FirstIndex = _node.FirstIndex,
            LastIndex = _node.LastIndex,
            SnapshotIndex = _node.SnapshotIndex,
            SnapshotTerm = _node.SnapshotTerm,
            LogBytes = _log.SizeBytes,
            Members = members.Members,
            ConfigurationIndex = _node.ConfigurationIndex,
            ConfigurationCommitted = _node.ConfigurationCommitted,
            Peers = peers,
            LiveBytes = _kv.LiveBytes,
            QuotaBytes = Quota?.QuotaBytes ?? 0,
            NoSpaceAlarm = NoSpaceAlarm(),
        };
    }

    public void Handle(MetricsRequested e) => e.Reply.TrySetResult(Observability.NodeGauges.Of(_node, _kv, _pending) with { NoSpaceAlarm = NoSpaceAlarm() });

    private void Publish() => _view = new NodeView(_soft.Role, _soft.Term, _soft.LeaderId, _suspended);

    private int LeaderHint() => _suspended || _node is null ? SoftState.NoLeader : _node.LeaderId;
}
