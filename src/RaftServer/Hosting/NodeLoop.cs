using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using RaftServer.Consensus;
using RaftServer.StateMachine;
using RaftServer.Storage;
using RaftServer.Transport;
using P = RaftPS.Protocol;

namespace RaftServer.Hosting;

/// <summary>What request handlers may read without asking the loop (published by the loop).</summary>
public sealed record NodeView(Role Role, long Term, int LeaderId, bool Suspended)
{
    public bool IsLeader => Role == Role.Leader && !Suspended;
}

public enum OutcomeCode { Ok, NotLeader, Unavailable, Stale }

public readonly record struct WriteOutcome(OutcomeCode Code, WriteResult Result, int LeaderHint, string? Reason);

public readonly record struct ReadOutcome(OutcomeCode Code, bool Found, byte[]? Value, List<KeyValueItem>? Items, bool More, int LeaderHint, string? Reason);

/// <summary>A client write waiting for its entry to be applied.</summary>
public sealed class PendingWrite(byte[] data) : TaskCompletionSource<WriteOutcome>(TaskCreationOptions.RunContinuationsAsynchronously)
{
    public byte[] Data { get; } = data;
    internal long Term;
    internal long Tick;
}

/// <summary>A client read (Get or Range) waiting for its read index to be applied.</summary>
public sealed class PendingRead() : TaskCompletionSource<ReadOutcome>(TaskCreationOptions.RunContinuationsAsynchronously)
{
    public string Key { get; init; } = "";
    public bool IsRange { get; init; }
    public string Prefix { get; init; } = "";
    public string StartAfter { get; init; } = "";
    public int Limit { get; init; }
    public bool Stale { get; init; }
    internal long Index;
}

internal sealed class StatusRequest() : TaskCompletionSource<P.StatusReply>(TaskCreationOptions.RunContinuationsAsynchronously);

internal sealed record SuspendRequest(double Seconds);

/// <summary>
/// The node's event loop: one dedicated thread owns the <see cref="RaftNode"/>, the state machine
/// and the log. gRPC handlers post events into a queue; each turn drains every queued event
/// (messages, proposals, reads), ticks the core when a tick is due, then handles the Ready:
/// persist hard state and entries with one fsync (group commit), send the messages (one batch
/// per peer), apply committed entries, answer waiting clients, Advance. A dedicated thread (not a
/// thread-pool task) because the fsync blocks it. No locks around Raft state.
/// </summary>
public sealed partial class NodeLoop : IDisposable
{
    public const int RangeMaxBytes = 2 << 20;
    /// <summary>A write waiting longer than this is answered Unavailable (the client retries with its session).</summary>
    public static readonly TimeSpan MaxWriteWait = TimeSpan.FromSeconds(10);

    private readonly ConcurrentQueue<object> _queue = new();
    /// <summary>
    /// How long the loop spins (with yields, so a runnable thread still gets the core) before it
    /// sleeps on the futex: an event that comes within that time, such as a follower's
    /// acknowledgement of a read round, costs no wake-up of a sleeping thread (tens of µs on this
    /// VM). A/B in docs/server.md "Runtime settings": 100 against ManualResetEventSlim's 10, get C=1
    /// about +10%, no loss at C=64/256, idle CPU 1.2 -> 1.5% of a core per node; 1000 lost 13% at get C=256.
    /// </summary>
    private const int WaitSpinCount = 100;
    private readonly ManualResetEventSlim _signal = new(false, WaitSpinCount);
    private const int Awake = 0, SleepingOnSignal = 1, SleepingInPoll = 2;
    /// <summary>How the loop thread sleeps, if it does: <see cref="Post"/> wakes it the same way.</summary>
    private int _sleeping;
    private readonly Thread _thread;
    private volatile bool _stopping;

    private readonly NodeSettings _settings;
    private readonly ClusterConfig _config;
    private readonly NodeStorage _storage;
    private readonly PeerTransport _peers;
    private readonly ILogger _logger;
    private readonly Action<Exception> _onFatal;
    private WriteAheadLog _wal => _storage.Wal;
    private RecoveredNode? _initial;

    private RaftNode _node = null!;
    private KvStore _kv = null!;
    private SoftState _soft;
    private int _lastVote = HardState.NoVote;
    private long _lastVoteTerm = -1;
    private long _ticks;
    /// <summary>The tick at which each peer was last heard from (for Status' "reachable").</summary>
    private readonly Dictionary<int, long> _lastHeard = new();
    private long _nextReadId;
    private readonly Dictionary<long, PendingWrite> _writes = new();
    /// <summary>Linearizable reads that arrived this turn: they share one read index request.</summary>
    private List<PendingRead> _readBatch = new();
    private readonly Dictionary<long, ReadBatch> _readsById = new();
    private readonly List<PendingRead> _readsWaitingApply = new();

    private sealed record ReadBatch(List<PendingRead> Reads, long Tick);
    private bool _suspended;
    private long _resumeAtMs;
    private double _suspendSeconds;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private volatile NodeView _view = new(Role.Follower, 0, SoftState.NoLeader, false);

    public NodeLoop(NodeSettings settings, ClusterConfig config, NodeStorage storage, RecoveredNode recovered,
        PeerTransport peers, ILoggerFactory loggers, Action<Exception> onFatal)
    {
        _settings = settings;
        _config = config;
        _storage = storage;
        _initial = recovered;
        _peers = peers;
        _logger = loggers.CreateLogger(Log.NodeCategory);
        _onFatal = onFatal;
        _policy = SnapshotPolicy.From(settings);
        _sender = CreateSnapshotSender(loggers);
        _thread = new Thread(Run) { IsBackground = true, Name = "raft-loop" };
    }

    public int Id => _settings.Id;
    public ClusterConfig Config => _config;
    public NodeView View => _view;
    public PeerTransport Peers => _peers;

    public void Start()
    {
        CreateNode(_initial!);
        _initial = null;
        OpenWakeSockets();
        _thread.Start();
    }

    // ---- posting (any thread) ----

    public void Post(object ev)
    {
        _queue.Enqueue(ev);
        if (Volatile.Read(ref _sleeping) == Awake) return;
        switch (Interlocked.Exchange(ref _sleeping, Awake))
        {
            case SleepingOnSignal: _signal.Set(); break;
            case SleepingInPoll: WakeFromPoll(); break;
        }
    }

    public Task<WriteOutcome> Propose(byte[] data)
    {
        var w = new PendingWrite(data);
        Post(w);
        return w.Task;
    }

    /// <summary>
    /// Proposes several writes as one event: the loop proposes them in this order, each as its
    /// own entry, in one turn (one queue operation and wake-up for the lot).
    /// </summary>
    public Task<WriteOutcome>[] ProposeMany(IReadOnlyList<byte[]> data)
    {
        var writes = new PendingWrite[data.Count];
        var tasks = new Task<WriteOutcome>[data.Count];
        for (var i = 0; i < writes.Length; i++)
        {
            writes[i] = new PendingWrite(data[i]);
            tasks[i] = writes[i].Task;
        }
        if (writes.Length > 0) Post(writes);
        return tasks;
    }

    public Task<ReadOutcome> Read(PendingRead read)
    {
        Post(read);
        return read.Task;
    }

    public Task<P.StatusReply> Status()
    {
        var s = new StatusRequest();
        Post(s);
        return s.Task;
    }

    public void Suspend(double seconds) => Post(new SuspendRequest(seconds));

    // ---- the loop ----

    private void Run()
    {
        try
        {
            var tickMs = (long)_settings.HeartbeatMs;
            var nextTick = _clock.ElapsedMilliseconds + tickMs;
            while (!_stopping)
            {
                var now = _clock.ElapsedMilliseconds;
                if (now < nextTick && _queue.IsEmpty && (_suspended || !_node.HasReady))
                {
                    var timeout = (int)Math.Min(nextTick - now, _suspended ? Math.Max(1, _resumeAtMs - now) : int.MaxValue);
                    // With peers connected, sleep where their messages arrive (NodeLoop.PeerSockets.cs).
                    if (_inbound.Count > 0) WaitOnSockets(timeout);
                    else Wait(timeout);
                }
                ReadPeers();

                var handled = 0;
                while (handled < 20000 && _queue.TryDequeue(out var ev))
                {
                    Handle(ev);
                    handled++;
                }
                if (_readBatch.Count > 0) StartReadBatch();

                now = _clock.ElapsedMilliseconds;
                if (now >= nextTick)
                {
                    // No catching up: after a pause (GC, CPU starvation) tick once, so the pause
                    // itself never makes this node call an election.
                    nextTick = now - nextTick > tickMs ? now + tickMs : nextTick + tickMs;
                    if (!_suspended) OnTick();
                }

                if (_suspended)
                {
                    if (_clock.ElapsedMilliseconds >= _resumeAtMs) Resume();
                    continue;
                }

                for (var i = 0; i < 4 && _node.HasReady; i++)
                {
                    var rd = _node.GetReady();
                    var started = _clock.ElapsedTicks;
                    HandleReady(rd);
                    _node.Advance(rd);
                    var ms = (_clock.ElapsedTicks - started) * 1000 / Stopwatch.Frequency;
                    if (ms >= SlowReadyMs) ReportSlowReady(rd, ms);
                }
            }
        }
        catch (Exception e)
        {
            if (_stopping) return;
            _logger.LogCritical(e, "The node loop failed: {Message}", e.Message);
            FailAll("the node stopped");
            _onFatal(e);
        }
        finally
        {
            CloseInbound();
        }
    }

    private void Wait(int timeoutMs)
    {
        _signal.Reset();
        Interlocked.Exchange(ref _sleeping, SleepingOnSignal);
        if (_queue.IsEmpty && !_stopping)
            _signal.Wait(timeoutMs);
        Interlocked.Exchange(ref _sleeping, Awake);
    }

    private void Handle(object ev)
    {
        switch (ev)
        {
            case List<Message> messages:
                foreach (var m in messages)
                    if (m.SnapshotData is ReceivedSnapshot received) _unclaimedSnapshots.Add(received);
                if (_suspended)
                {
                    DropUnclaimedSnapshots(installed: null);
                    return;
                }
                if (messages.Count > 0) _lastHeard[messages[0].From] = _ticks;
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
                break;
            case PendingWrite w:
                ProposeWrite(w);
                break;
            case PendingWrite[] batch:
                foreach (var w in batch) ProposeWrite(w);
                break;
            case PendingRead read:
                if (_suspended) { read.TrySetResult(ReadFailed("the node is suspended")); return; }
                if (read.Stale) { Answer(read); return; }
                _readBatch.Add(read);
                break;
            case StatusRequest status:
                status.TrySetResult(BuildStatus());
                break;
            case SuspendRequest s:
                if (!_suspended) EnterSuspend(s.Seconds);
                break;
            case InboundPeerSocket inbound:
                AddInbound(inbound.Socket);
                break;
            case PeerUnreachable u: // a hint for the core: only timers and the lease (docs/server.md, "Fail-over")
                if (!_suspended) _node.LeaderUnreachable(u.PeerId);
                break;
            default:
                HandleSnapshotEvent(ev);
                break;
        }
    }

    private void ProposeWrite(PendingWrite w)
    {
        if (_suspended) { w.TrySetResult(Unavailable("the node is suspended")); return; }
        var r = _node.Propose(w.Data);
        switch (r.Outcome)
        {
            case ProposeOutcome.Accepted:
                w.Term = r.Term;
                w.Tick = _ticks;
                if (_writes.Remove(r.Index, out var replaced))
                    replaced.TrySetResult(Unavailable("the entry was replaced"));
                _writes[r.Index] = w;
                break;
            case ProposeOutcome.NotLeader:
                w.TrySetResult(new WriteOutcome(OutcomeCode.NotLeader, default, r.LeaderHint, $"node {_settings.Id} is no longer the leader"));
                break;
            default:
                w.TrySetResult(Unavailable("leadership transfer in progress"));
                break;
        }
    }

    private void StartReadBatch()
    {
        var batch = _readBatch;
        _readBatch = new List<PendingRead>();
        var id = ++_nextReadId;
        if (!_node.ReadIndex(id))
        {
            var failed = ReadFailed("no leader is known");
            foreach (var r in batch) r.TrySetResult(failed);
            return;
        }
        _readsById[id] = new ReadBatch(batch, _ticks);
    }

    private void OnTick()
    {
        _ticks++;
        _node.Tick();
        // Safety nets (the core normally answers first): reads whose read index never came, and
        // writes stuck longer than MaxWriteWait, are answered Unavailable so nobody hangs.
        if ((_ticks & 7) != 0) return;
        var readLimit = _ticks - 4L * _settings.ElectionTicks;
        if (_readsById.Count > 0)
            foreach (var (id, batch) in _readsById)
                if (batch.Tick < readLimit)
                {
                    _readsById.Remove(id);
                    foreach (var read in batch.Reads) read.TrySetResult(ReadFailed("the read index was not confirmed in time"));
                }
        var writeLimit = _ticks - (long)(MaxWriteWait.TotalMilliseconds / _settings.HeartbeatMs);
        if (_writes.Count > 0)
            foreach (var (index, w) in _writes)
                if (w.Tick < writeLimit || w.Task.IsCompleted)
                {
                    _writes.Remove(index);
                    w.TrySetResult(Unavailable("the write was not committed in time"));
                }
    }

    /// <summary>A Ready that takes this long (most of an election timeout at the defaults) is reported.</summary>
    private const long SlowReadyMs = 100;
    private long _lastSlowReport = -10_000;
    private long _lastSaveMs;
    private int _gen2Seen = GC.CollectionCount(2);

    private void ReportSlowReady(Ready rd, long ms)
    {
        var gen2 = GC.CollectionCount(2);
        var now = _clock.ElapsedMilliseconds;
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

    private void HandleReady(Ready rd)
    {
        if (rd.SoftState is { } soft) OnSoftState(soft);
        _lastSaveMs = 0;
        // A leader's snapshot, installed by the core: it replaces the state machine and the log
        // before anything of this Ready is persisted or sent (README "Snapshots").
        if (rd.Snapshot is { } snapshot) InstallSnapshot(snapshot, rd.SnapshotData);
        if (_unclaimedSnapshots.Count > 0) DropUnclaimedSnapshots(rd.SnapshotData);
        StartSnapshotTransfers(rd.Messages);
        if (rd.MustSync)
        {
            // A leader's appends and heartbeats may leave before its own fsync (Raft thesis
            // 10.2.1): followers write in parallel with the leader. Safe here because the leader's
            // term and vote are already durable (we check that this Ready changes neither) and an
            // acknowledgement can only be handled in a later turn, after this Save has returned, so
            // no entry commits before the leader's copy is on disk. Everything else (votes,
            // append responses) is sent only after the fsync.
            var early = rd.Messages.Count > 0 && _soft.Role == Role.Leader &&
                (rd.HardState is not { } next || (next.Term == _wal.HardState.Term && next.VotedFor == _wal.HardState.VotedFor));
            if (early) SplitLeaderMessages(rd.Messages);
            var saveStarted = _clock.ElapsedMilliseconds;
            _wal.Save(rd.HardState, rd.Entries);
            _lastSaveMs = _clock.ElapsedMilliseconds - saveStarted;
            if (early)
            {
                _peers.Send(_lateMessages);
                _lateMessages.Clear();
            }
            else
                _peers.Send(rd.Messages);
        }
        else
        {
            // Only the commit index moved (Ready.MustSync): written, not fsynced, so a leader
            // applies and answers a write after one fsync, not two, and a follower's heartbeat
            // response does not wait for the disk.
            if (rd.HardState is { } commitOnly) _wal.Save(commitOnly, [], sync: false);
            _peers.Send(rd.Messages);
        }
        if (rd.HardState is { } hs && hs.VotedFor != HardState.NoVote && (hs.VotedFor != _lastVote || hs.Term != _lastVoteTerm))
        {
            _lastVote = hs.VotedFor;
            _lastVoteTerm = hs.Term;
            Log.VotedFor(_logger, hs.VotedFor);
        }

        var committed = rd.CommittedEntries;
        for (var i = 0; i < committed.Count; i++)
        {
            var e = committed[i];
            var result = _kv.Apply(e);
            _appliedTerm = e.Term;
            if (_writes.Count == 0 || !_writes.Remove(e.Index, out var w)) continue;
            if (w.Term != e.Term)
                w.TrySetResult(Unavailable("leadership changed before the write committed"));
            else if (result.Status == ApplyStatus.Stale)
                w.TrySetResult(new WriteOutcome(OutcomeCode.Stale, default, SoftState.NoLeader, "the sequence number is older than the client's session window"));
            else
                w.TrySetResult(new WriteOutcome(OutcomeCode.Ok, result.Result, SoftState.NoLeader, null));
        }

        var states = rd.ReadStates;
        for (var i = 0; i < states.Count; i++)
        {
            var rs = states[i];
            if (!_readsById.Remove(rs.RequestId, out var batch)) continue;
            foreach (var read in batch.Reads)
            {
                if (rs.Index < 0) { read.TrySetResult(ReadFailed("leadership could not be confirmed")); continue; }
                read.Index = rs.Index;
                if (_kv.AppliedIndex >= rs.Index) Answer(read);
                else _readsWaitingApply.Add(read);
            }
        }
        if (_readsWaitingApply.Count > 0 && (committed.Count > 0 || rd.Snapshot is not null)) AnswerAppliedReads();
        if (committed.Count > 0) MaybeTakeSnapshot();
    }

    private void AnswerAppliedReads()
    {
        var applied = _kv.AppliedIndex;
        _readsWaitingApply.RemoveAll(read =>
        {
            if (read.Index > applied) return false;
            Answer(read);
            return true;
        });
    }

    private readonly List<Message> _earlyMessages = new();
    private readonly List<Message> _lateMessages = new();

    /// <summary>Sends the leader's Append and Heartbeat messages now; keeps the rest in <see cref="_lateMessages"/>.</summary>
    private void SplitLeaderMessages(IReadOnlyList<Message> messages)
    {
        for (var i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            (m.Type is MessageType.Append or MessageType.Heartbeat ? _earlyMessages : _lateMessages).Add(m);
        }
        _peers.Send(_earlyMessages);
        _earlyMessages.Clear();
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
                    if (before.Role != Role.Follower || s.Term != before.Term) Log.Follower(_logger, s.Term);
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

        if (before.Role == Role.Leader && s.Role != Role.Leader && _writes.Count > 0)
        {
            // Our proposals may or may not survive under the new leader: answer Unavailable now;
            // a retry with the same client id and sequence applies at most once.
            foreach (var w in _writes.Values)
                w.TrySetResult(new WriteOutcome(OutcomeCode.Unavailable, default, s.LeaderId, "leadership lost before the write committed"));
            _writes.Clear();
        }
        if (before.Role == Role.Leader && s.Role != Role.Leader) _sender.CancelAll();
        Publish();
    }

    private void Publish() => _view = new NodeView(_soft.Role, _soft.Term, _soft.LeaderId, _suspended);

    private void Answer(PendingRead read)
    {
        if (read.IsRange)
        {
            var items = _kv.Range(read.Prefix, read.StartAfter, read.Limit, RangeMaxBytes, out var more);
            read.TrySetResult(new ReadOutcome(OutcomeCode.Ok, false, null, items, more, SoftState.NoLeader, null));
        }
        else
        {
            var found = _kv.TryGet(read.Key, out var value);
            read.TrySetResult(new ReadOutcome(OutcomeCode.Ok, found, found ? value : null, null, false, SoftState.NoLeader, null));
        }
    }

    private WriteOutcome Unavailable(string reason) => new(OutcomeCode.Unavailable, default, LeaderHint(), reason);
    private ReadOutcome ReadFailed(string reason) => new(OutcomeCode.Unavailable, false, null, null, false, LeaderHint(), reason);
    private int LeaderHint() => _suspended || _node is null ? SoftState.NoLeader : _node.LeaderId;

    private void FailAll(string reason)
    {
        foreach (var w in _writes.Values) w.TrySetResult(Unavailable(reason));
        _writes.Clear();
        foreach (var b in _readsById.Values)
            foreach (var r in b.Reads) r.TrySetResult(ReadFailed(reason));
        _readsById.Clear();
        foreach (var r in _readBatch) r.TrySetResult(ReadFailed(reason));
        _readBatch.Clear();
        foreach (var r in _readsWaitingApply) r.TrySetResult(ReadFailed(reason));
        _readsWaitingApply.Clear();
    }

    // ---- suspend / resume ----

    private void EnterSuspend(double seconds)
    {
        Log.Sleeping(_logger, seconds);
        _suspended = true;
        _suspendSeconds = seconds;
        _resumeAtMs = _clock.ElapsedMilliseconds + (long)(seconds * 1000);
        Publish();
        _peers.Pause();
        CloseInbound(); // peers reconnect when this node resumes
        _sender.CancelAll();
        FailAll("the node is suspended");
    }

    private void Resume()
    {
        // Restart from durable state only, as a process restart would: reread the log, rebuild
        // the state machine by replaying committed entries.
        var recovered = _storage.Reopen();
        _suspended = false;
        _peers.Resume();
        Log.Resumed(_logger, _suspendSeconds);
        CreateNode(recovered);
    }

    private void CreateNode(RecoveredNode recovered)
    {
        var persisted = recovered.State;
        _kv = recovered.Store;
        _appliedTerm = persisted.SnapshotTerm;
        _currentSnapshot = recovered.Snapshot;
        _lastSnapshotBytes = recovered.Snapshot?.Length ?? 0;
        _nodeGeneration++;
        _node = new RaftNode(new RaftOptions
        {
            Id = _settings.Id,
            Members = _config.Nodes.Select(n => n.Id).ToArray(),
            ElectionTicks = _settings.ElectionTicks,
            HeartbeatTicks = 1,
            Random = new Random(),
            SnapshotTimeoutTicks = SnapshotTimeoutTicks,
        }, persisted);
        _soft = new SoftState(_node.Role, _node.Term, _node.LeaderId);
        _lastVote = persisted.HardState.VotedFor;
        _lastVoteTerm = persisted.HardState.Term;
        Log.Follower(_logger, _node.Term);
        Publish();
    }

    private P.StatusReply BuildStatus()
    {
        var reply = new P.StatusReply
        {
            Id = _settings.Id,
            Role = (P.Role)(int)_node.Role,
            Term = _node.Term,
            CommitIndex = _node.CommitIndex,
            AppliedIndex = _kv.AppliedIndex,
            FirstIndex = _node.FirstIndex,
            LastIndex = _node.LastIndex,
            SnapshotIndex = _node.CurrentSnapshot.Index,
            SnapshotTerm = _node.CurrentSnapshot.Term,
            LogBytes = _wal.SizeBytes,
        };
        if (_node.LeaderId != SoftState.NoLeader && _config.Find(_node.LeaderId) is { } leader) reply.Leader = ToInfo(leader);
        foreach (var n in _config.Nodes) reply.Members.Add(ToInfo(n));
        if (_node.Role == Role.Leader)
            foreach (var p in _node.Progress)
            {
                if (p.Id == _settings.Id) continue;
                var heard = _lastHeard.TryGetValue(p.Id, out var t) && _ticks - t <= _settings.ElectionTicks;
                reply.Peers.Add(new P.PeerProgress { Id = p.Id, MatchIndex = p.Match, NextIndex = p.Next, Reachable = heard });
            }
        return reply;
    }

    public static P.NodeInfo ToInfo(NodeAddress n) => new() { Id = n.Id, Address = n.Host, Port = n.Port };

    public void Stop()
    {
        if (_stopping) return;
        _stopping = true;
        _signal.Set();
        WakeFromPoll();
        if (_thread.IsAlive) _thread.Join(TimeSpan.FromSeconds(5));
        FailAll("the node is stopping");
    }

    public void Dispose()
    {
        Stop();
        CloseWakeSockets();
        _sender.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _storage.Dispose();
    }
}
