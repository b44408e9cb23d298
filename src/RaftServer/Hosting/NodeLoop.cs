using System.Collections.Concurrent;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using RaftServer.Consensus;
using RaftServer.Transport;

namespace RaftServer.Hosting;

/// <summary>
/// The node's event loop: one dedicated thread runs the <see cref="RaftDriver"/> (which owns the
/// core, the state machine and the log), so there are no locks around Raft state. Other threads
/// post <see cref="LoopEvent"/>s into a queue and wake the thread. Each turn:
/// <list type="number">
/// <item>read what the peers sent on their connections (the loop reads those sockets itself);</item>
/// <item>dispatch every queued event to the driver;</item>
/// <item>start one read-index request for the turn's reads, tick the core when a tick is due;</item>
/// <item>end the core's turn and handle its Readies (persist, send, apply, answer).</item>
/// </list>
/// A dedicated thread (not a thread-pool task) because the fsync blocks it.
/// </summary>
public sealed class NodeLoop : IPeerEndpoint, IDisposable
{
    /// <summary>
    /// How long the loop spins (with yields, so a runnable thread still gets the core) before it
    /// sleeps on the futex while no peer is connected: an event that comes within that time costs
    /// no wake-up of a sleeping thread (tens of µs on a VM).
    /// </summary>
    private const int WaitSpinCount = 100;
    /// <summary>Readies handled per turn before the loop looks at its queue and peers again.</summary>
    private const int ReadiesPerTurn = 4;
    /// <summary>Events handled per turn, so a flood of them cannot starve ticks and Readies.</summary>
    private const int EventsPerTurn = 20_000;

    private readonly ConcurrentQueue<LoopEvent> _queue = new();
    private readonly ManualResetEventSlim _signal = new(false, WaitSpinCount);
    private const int Awake = 0, SleepingOnSignal = 1, SleepingInPoll = 2;
    /// <summary>How the loop thread sleeps, if it does: <see cref="Post"/> wakes it the same way.</summary>
    private int _sleeping;
    private readonly Thread _thread;
    private volatile bool _stopping;
    /// <summary>The loop failed (<see cref="_onFatal"/> was called): events posted now are refused at once.</summary>
    private volatile bool _failed;
    /// <summary>Whether the loop has something to do besides its peers' sockets (made once: the wait asks it often).</summary>
    private readonly Func<bool> _hasWork;

    /// <summary>Set by <see cref="Start"/>; events posted before it wait in the queue.</summary>
    private RaftDriver? _driverOrNull;
    private RaftDriver _driver => _driverOrNull!;
    private readonly IPeerSockets _sockets;
    private readonly Func<long> _nowMs;
    private readonly long _tickMs;
    private readonly ILogger _logger;
    private readonly Action<Exception> _onFatal;
    private static readonly NodeView Starting = new(Role.Follower, 0, SoftState.NoLeader, false);

    /// <summary>
    /// The loop exists (and takes events into its queue) before its driver: the peer links and the
    /// snapshot sender post to it from the moment they are made, and the driver is made from them.
    /// </summary>
    /// <param name="nowMs">The monotonic clock the driver uses too.</param>
    /// <param name="onFatal">Called once if the loop fails (the process then stops).</param>
    /// <param name="limits">The caps on pending client writes and reads (<see cref="Admission"/>).</param>
    public NodeLoop(IPeerSockets sockets, int tickMs, Func<long> nowMs, ILogger logger, Action<Exception> onFatal, ClientLimits? limits = null)
    {
        limits ??= ClientLimits.Default;
        Admission = new Admission(limits.MaxPendingWrites, limits.MaxPendingReads);
        _sockets = sockets;
        _tickMs = tickMs;
        _nowMs = nowMs;
        _logger = logger;
        _onFatal = onFatal;
        _thread = new Thread(Run) { IsBackground = true, Name = "raft-loop" };
        _hasWork = () => !_queue.IsEmpty || _stopping;
    }

    public NodeView View => _driverOrNull?.View ?? Starting;

    /// <summary>How many client writes and reads this node holds, and the caps it refuses beyond.</summary>
    public Admission Admission { get; }

    private volatile CancellationTokenSource _leaderEpoch = new();
    private NodeView? _lastView;

    /// <summary>
    /// Cancelled when this node's view of the leader changes (another leader or term, or the node
    /// suspends): a call forwarded to the leader it knew then gives up instead of waiting on a
    /// node that may be cut off. Read it before checking <see cref="View"/>.
    /// </summary>
    public CancellationToken LeaderChanged => _leaderEpoch.Token;

    /// <summary>On the loop thread, after a turn that changed the leader, term or suspension (metrics).</summary>
    public Action<NodeView>? ViewChanged { get; set; }

    /// <summary>The loop's state for a metrics scrape.</summary>
    public Task<Observability.NodeGauges> Gauges()
    {
        var e = new MetricsRequested();
        Post(e);
        return e.Reply.Task;
    }

    /// <summary>After each turn: a new view of the leader ends the previous epoch (its callbacks run on the pool, not here).</summary>
    private void NoticeLeaderChange()
    {
        var view = _driver.View;
        if (ReferenceEquals(view, _lastView)) return;
        var before = _lastView;
        _lastView = view;
        if (before is not null && before.LeaderId == view.LeaderId && before.Term == view.Term && before.Suspended == view.Suspended) return;
        ViewChanged?.Invoke(view);
        var ended = _leaderEpoch;
        _leaderEpoch = new CancellationTokenSource();
        _ = ended.CancelAsync();
    }

    /// <summary>The window of history watchers read; null until the loop starts.</summary>
    public WatchHub? Watches => _driverOrNull?.Watches;

    /// <summary>Builds the driver's core from what was recovered and starts the thread.</summary>
    public void Start(RaftDriver driver, RecoveredNode recovered)
    {
        driver.Start(recovered);
        _driverOrNull = driver;
        _thread.Start();
    }

    // ---- posting (any thread) ----

    public void Post(LoopEvent ev)
    {
        _queue.Enqueue(ev);
        if (_failed)
        {
            // The loop is gone (a disk error): nothing will take this from the queue.
            RefuseQueued();
            return;
        }
        if (Volatile.Read(ref _sleeping) == Awake) return;
        switch (Interlocked.Exchange(ref _sleeping, Awake))
        {
            case SleepingOnSignal: _signal.Set(); break;
            case SleepingInPoll: _sockets.Wake(); break;
        }
    }

    public Task<WriteOutcome> Propose(byte[] data)
    {
        if (!Admission.TryAdmitWrites(1)) return Task.FromResult(Admission.WritesRefused());
        var w = new PendingWrite(data);
        Post(new WriteRequested(w));
        return w.Task;
    }

    /// <summary>
    /// Proposes several writes as one event: the loop proposes them in this order, each as its
    /// own entry, in one turn (one queue operation and wake-up for the lot).
    /// </summary>
    public Task<WriteOutcome>[] ProposeMany(IReadOnlyList<byte[]> data)
    {
        if (data.Count > 0 && !Admission.TryAdmitWrites(data.Count))
        {
            var refused = Task.FromResult(Admission.WritesRefused());
            return Enumerable.Repeat(refused, data.Count).ToArray();
        }
        var writes = new PendingWrite[data.Count];
        var tasks = new Task<WriteOutcome>[data.Count];
        for (var i = 0; i < writes.Length; i++)
        {
            writes[i] = new PendingWrite(data[i]);
            tasks[i] = writes[i].Task;
        }
        if (writes.Length > 0) Post(new WritesRequested(writes));
        return tasks;
    }

    public Task<ReadOutcome> Read(PendingRead read)
    {
        if (!Admission.TryAdmitRead()) return Task.FromResult(Admission.ReadsRefused());
        Post(new ReadRequested(read));
        return read.Task;
    }

    public Task<NodeStatus> Status()
    {
        var s = new StatusRequested();
        Post(s);
        return s.Reply.Task;
    }

    public void Suspend(double seconds) => Post(new SuspendRequested(seconds));

    /// <summary>Ends a suspension now.</summary>
    public void Resume() => Post(new ResumeRequested());

    /// <summary>Proposes a membership change; answered once the new configuration is applied.</summary>
    public Task<WriteOutcome> ChangeMembership(ChangeKind kind, int id, string host = "", int port = 0)
    {
        var e = new MemberChangeRequested(kind, id, host, port);
        Post(e);
        return e.Write.Task;
    }

    /// <summary>Hands leadership to <paramref name="target"/> (null: the most up-to-date voter).</summary>
    public Task<TransferOutcome> TransferLeadership(int? target)
    {
        var e = new TransferRequested(target);
        Post(e);
        return e.Reply.Task;
    }

    // ---- IPeerEndpoint ----

    public bool Suspended => View.Suspended;

    public void AcceptConnection(Socket socket, int peerId) => Post(new PeerConnected(socket, peerId));

    public void AcceptTlsConnection(Transport.TlsPeerConnection connection, int peerId) => Post(new PeerConnected(null, peerId, connection));

    public void Deliver(List<Message> messages) => Post(new MessagesReceived(messages));

    // ---- the loop ----

    private void Run()
    {
        try
        {
            var nextTick = _nowMs() + _tickMs;
            Action<List<Message>> receive = _driver.Receive;
            while (!_stopping)
            {
                var now = _nowMs();
                if (now < nextTick && _queue.IsEmpty && !_driver.HasReady)
                {
                    var timeout = nextTick - now;
                    if (_driver.Suspended) timeout = Math.Max(1, Math.Min(timeout, _driver.ResumeAtMs - now));
                    Wait((int)timeout);
                }
                _sockets.ReadAvailable(receive);

                int takenWrites = 0, takenReads = 0;
                for (var handled = 0; handled < EventsPerTurn && _queue.TryDequeue(out var ev); handled++)
                {
                    ev.DispatchTo(_driver);
                    // Admission's accounting only (the driver dispatches by type): what Propose,
                    // ProposeMany and Read admitted leaves the queue here.
                    switch (ev)
                    {
                        case WriteRequested: takenWrites++; break;
                        case WritesRequested many: takenWrites += many.Writes.Length; break;
                        case ReadRequested: takenReads++; break;
                    }
                }
                _driver.StartReads();

                now = _nowMs();
                if (now >= nextTick)
                {
                    // No catching up: after a pause (GC, CPU starvation) tick once, so the pause
                    // itself never makes this node call an election.
                    nextTick = now - nextTick > _tickMs ? now + _tickMs : nextTick + _tickMs;
                    _driver.Tick();
                }
                _driver.ResumeIfDue();

                _driver.EndTurn();
                for (var i = 0; i < ReadiesPerTurn && _driver.ProcessReady(); i++) { }
                Admission.TurnEnded(takenWrites, takenReads, _driver.Pending.Writes, _driver.Pending.Reads);
                NoticeLeaderChange();
            }
        }
        catch (Exception e)
        {
            if (_stopping) return;
            if (e is Storage.DiskFailureException)
                _logger.LogCritical("disk error, the node stops: {Message}. Nothing this node had not made durable was acknowledged. " +
                    "Free space or repair the disk, then start the node again (docs/security.md, \"Disk errors\")", e.Message);
            else
                _logger.LogCritical(e, "The node loop failed: {Message}", e.Message);
            _driver.FailAll("the node stopped");
            _failed = true;
            RefuseQueued();
            _onFatal(e);
        }
        finally
        {
            _sockets.CloseAll();
        }
    }

    /// <summary>
    /// After the loop failed: answers the calls whose events are still queued (or posted since)
    /// as the driver answered those it held, so no caller waits for a loop that is gone.
    /// </summary>
    private void RefuseQueued()
    {
        const string reason = "the node stopped";
        var write = PendingRequests.Unavailable(reason, SoftState.NoLeader);
        var read = PendingRequests.ReadFailed(reason, SoftState.NoLeader);
        while (_queue.TryDequeue(out var ev))
        {
            switch (ev)
            {
                case WriteRequested w: w.Write.TrySetResult(write); break;
                case WritesRequested many: foreach (var w in many.Writes) w.TrySetResult(write); break;
                case ReadRequested r: r.Read.TrySetResult(read); break;
                case MemberChangeRequested m: m.Write.TrySetResult(write); break;
                case TransferRequested t: t.Reply.TrySetResult(new TransferOutcome(OutcomeCode.Unavailable, SoftState.NoLeader, 0, reason)); break;
                case StatusRequested st: st.Reply.TrySetException(new InvalidOperationException(reason)); break;
                case MetricsRequested mr: mr.Reply.TrySetException(new InvalidOperationException(reason)); break;
                case PeerConnected pc:
                    pc.Socket?.Dispose();
                    pc.Tls?.Dispose();
                    break;
                default: break; // no caller waits on it
            }
        }
    }

    /// <summary>Sleeps until an event is posted, a peer's socket is readable, or the timeout.</summary>
    private void Wait(int timeoutMs)
    {
        if (_sockets.HasConnections)
        {
            // With peers connected, wait where their messages arrive: poll a while, then sleep in poll().
            if (_sockets.Spin(_hasWork)) return;
            Interlocked.Exchange(ref _sleeping, SleepingInPoll);
            if (_queue.IsEmpty && !_stopping) _sockets.Sleep(timeoutMs);
        }
        else
        {
            _signal.Reset();
            Interlocked.Exchange(ref _sleeping, SleepingOnSignal);
            if (_queue.IsEmpty && !_stopping) _signal.Wait(timeoutMs);
        }
        Interlocked.Exchange(ref _sleeping, Awake);
    }

    public void Stop()
    {
        if (_stopping) return;
        _stopping = true;
        _signal.Set();
        _sockets.Wake();
        if (_thread.IsAlive) _thread.Join(TimeSpan.FromSeconds(5));
        _driverOrNull?.FailAll("the node is stopping");
    }

    public void Dispose()
    {
        Stop();
        _signal.Dispose();
    }
}
