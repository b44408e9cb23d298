using System.Diagnostics;
using System.Diagnostics.Metrics;
using RaftServer.Consensus;
using RaftServer.Hosting;

namespace RaftServer.Observability;

/// <summary>
/// The node's metrics as <see cref="System.Diagnostics.Metrics"/> instruments of the meter
/// <see cref="MeterName"/> (exported by <see cref="MetricsServer"/>; the list with units and
/// meanings is docs/observability.md). Two kinds:
/// <list type="bullet">
/// <item>events counted or timed where they happen (fsyncs, peer round trips, client requests,
/// leader changes): one <c>Add</c>/<c>Record</c>, which costs a flag check while nothing listens;</item>
/// <item>state read when a scrape asks (<see cref="ObservableGauge{T}"/>): the role and term from the
/// published <see cref="NodeView"/>, the rest copied on the loop thread by one
/// <see cref="MetricsRequested"/> event per scrape, so the hot path pays nothing for them.</item>
/// </list>
/// It also keeps the few numbers the Status call reports without a metrics backend (requests
/// answered, the fsync p99 of a recent window, the last contact with a leader).
/// </summary>
public sealed class NodeMetrics : IDisposable
{
    public const string MeterName = "RaftPS.Server";
    /// <summary>A scrape waits this long for the loop's answer before reporting what it last saw.</summary>
    private static readonly TimeSpan FetchTimeout = TimeSpan.FromSeconds(1);
    /// <summary>
    /// The observable instruments of one collection (called one after the other) share one loop
    /// round trip; short, so the next scrape, even one right after, sees fresh values.
    /// </summary>
    private static readonly TimeSpan FetchReuse = TimeSpan.FromMilliseconds(25);

    // Durations from 100 µs (a fast fsync on an SSD) to 10 s, roughly ×2.5 apart.
    private static readonly double[] DurationBuckets =
        [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    // Snapshots take from milliseconds to minutes.
    private static readonly double[] SnapshotBuckets = [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

    private readonly Meter _meter = new(MeterName);
    private Func<NodeView>? _view;
    private Func<Task<NodeGauges>>? _fetch;

    private readonly Histogram<double> _walFsync;
    private readonly Counter<long> _walBytes;
    private readonly Histogram<double> _snapshotSave;
    private readonly Histogram<double> _snapshotSend;
    private readonly Histogram<double> _peerRoundTrip;
    private readonly Counter<long> _leaderChanges;
    private readonly Counter<long> _clientRequests;

    private readonly Lock _gaugeGate = new();
    private NodeGauges? _gauges;
    private long _gaugesAt;
    private long _committedTotal, _appliedTotal;

    private long _reads, _writes;
    private long _lastLeaderContact;
    private int _lastLeader = SoftState.NoLeader;
    private long _lastTerm;

    public NodeMetrics()
    {
        var m = _meter;
        _walFsync = m.CreateHistogram("raftps.wal.fsync.duration", "s",
            "Time of one durable save of the write-ahead log: the write(2) of its records and the fsync(2)", advice: Buckets(DurationBuckets));
        _walBytes = m.CreateCounter<long>("raftps.wal.written", "By", "Bytes of records written to the write-ahead log");
        _snapshotSave = m.CreateHistogram("raftps.snapshot.save.duration", "s",
            "Time to serialise, write and fsync a snapshot this node took", advice: Buckets(SnapshotBuckets));
        _snapshotSend = m.CreateHistogram("raftps.snapshot.send.duration", "s",
            "Time to stream a snapshot to a follower (leader), by outcome", advice: Buckets(SnapshotBuckets));
        _peerRoundTrip = m.CreateHistogram("raftps.peer.round_trip_time", "s",
            "Heartbeat to heartbeat response, as the leader's loop sees it, by peer", advice: Buckets(DurationBuckets));
        _leaderChanges = m.CreateCounter<long>("raftps.leader.changes_seen", null, "Times this node saw a new leader (or a new term of one)");
        _clientRequests = m.CreateCounter<long>("raftps.client.requests", null, "Client gRPC calls this node answered, by method and status code");

        m.CreateObservableGauge("raftps.is_leader", () => ObserveView(v => v.IsLeader ? 1 : 0), null, "1 when this node is the leader, else 0");
        m.CreateObservableGauge("raftps.term", () => ObserveView(v => v.Term), null, "The current term");
        m.CreateObservableGauge("raftps.suspended", () => ObserveView(v => v.Suspended ? 1 : 0), null, "1 while this node is suspended (Suspend-RaftNode)");
        m.CreateObservableGauge("raftps.commit_index", () => Observe(g => g.CommitIndex), null, "The highest log index known committed");
        m.CreateObservableGauge("raftps.applied_index", () => Observe(g => g.AppliedIndex), null, "The highest log index applied to the key-value store");
        m.CreateObservableGauge("raftps.last_index", () => Observe(g => g.LastIndex), null, "The last index of this node's log");
        m.CreateObservableCounter("raftps.proposals.committed", () => ObserveTotal(ref _committedTotal), null,
            "Log entries this node saw committed (from its commit index when first scraped)");
        m.CreateObservableCounter("raftps.proposals.applied", () => ObserveTotal(ref _appliedTotal), null,
            "Log entries this node applied (from its applied index when first scraped)");
        m.CreateObservableCounter("raftps.proposals.failed", () => Observe(g => g.WritesFailed), null,
            "Writes this node proposed as leader that were answered Unavailable instead of applied (leadership lost, timed out, stopping)");
        m.CreateObservableGauge("raftps.proposals.pending", () => Observe(g => (long)g.PendingWrites), null, "Writes proposed by this node (leader) waiting to be applied");
        m.CreateObservableCounter("raftps.read_index.rounds", () => Observe(g => g.ReadIndexRounds), null,
            "Read-index requests this node started (one per loop turn with linearizable reads, shared by them)");
        m.CreateObservableGauge("raftps.keys", () => Observe(g => (long)g.Keys), null, "Keys in the key-value store");
        m.CreateObservableGauge("raftps.live_data", () => Observe(g => g.LiveBytes), "By", "Bytes of live keys (UTF-8) and values in the key-value store");
        m.CreateObservableGauge("raftps.nospace_alarm", () => Observe(g => g.NoSpaceAlarm ? 1 : 0), null, "1 while the storage quota's NOSPACE alarm is on (writes refused), else 0");
        m.CreateObservableGauge("raftps.peer.lag_entries", PeerLag, null, "Entries a peer's log is behind the leader's last index (leader only), by peer");
    }

    /// <summary>
    /// Connects the gauges to the node loop (made after these metrics: the loop's sockets report to them).
    /// </summary>
    /// <param name="view">The loop's published view (role, term, leader, suspended).</param>
    /// <param name="fetch">Asks the loop for its <see cref="NodeGauges"/> (posts a <see cref="MetricsRequested"/>).</param>
    public void Attach(Func<NodeView> view, Func<Task<NodeGauges>> fetch)
    {
        _view = view;
        _fetch = fetch;
    }

    private static InstrumentAdvice<double> Buckets(double[] bounds) => new() { HistogramBucketBoundaries = bounds };

    // ---- events (the loop, the gRPC threads) ----

    /// <summary>One synced save of the WAL took <paramref name="seconds"/> and wrote <paramref name="bytes"/>.</summary>
    public void WalSaved(double seconds, long bytes, bool synced)
    {
        if (bytes > 0) _walBytes.Add(bytes);
        if (!synced) return;
        _walFsync.Record(seconds);
        RecentFsyncs.Record(seconds);
    }

    public void SnapshotSaved(TimeSpan took) => _snapshotSave.Record(took.TotalSeconds);

    public void SnapshotSent(TimeSpan took, bool ok) =>
        _snapshotSend.Record(took.TotalSeconds, new KeyValuePair<string, object?>("outcome", ok ? "ok" : "failed"));

    public void PeerRoundTrip(int peer, double seconds) =>
        _peerRoundTrip.Record(seconds, new KeyValuePair<string, object?>("peer", PeerLabel(peer)));

    /// <summary>A heartbeat or append from a leader arrived.</summary>
    public void LeaderContact() => Volatile.Write(ref _lastLeaderContact, Stopwatch.GetTimestamp());

    /// <summary>The loop published a new view: a new leader (or a known leader in a new term) is a change.</summary>
    public void ViewChanged(NodeView view)
    {
        if (view.LeaderId == SoftState.NoLeader || (view.LeaderId == _lastLeader && view.Term == _lastTerm)) return;
        _lastLeader = view.LeaderId;
        _lastTerm = view.Term;
        _leaderChanges.Add(1);
    }

    /// <summary>A client call ended with <paramref name="code"/> (a gRPC status code name).</summary>
    public void ClientRequest(string method, string code, RequestKind kind)
    {
        _clientRequests.Add(1, new KeyValuePair<string, object?>("method", method), new KeyValuePair<string, object?>("code", code));
        if (kind == RequestKind.Read) Interlocked.Increment(ref _reads);
        else if (kind == RequestKind.Write) Interlocked.Increment(ref _writes);
    }

    // ---- for the Status call ----

    /// <summary>The last <see cref="LatencyWindow.Capacity"/> synced saves of the WAL.</summary>
    public LatencyWindow RecentFsyncs { get; } = new();
    /// <summary>Reads (Get, Range) this node answered, successful or not.</summary>
    public long ReadsTotal => Interlocked.Read(ref _reads);
    /// <summary>Writes (Set, Delete, SetMany) this node answered, successful or not.</summary>
    public long WritesTotal => Interlocked.Read(ref _writes);

    /// <summary>Milliseconds since a leader's last heartbeat or append reached this node; -1 if none ever did.</summary>
    public long MsSinceLeaderContact
    {
        get
        {
            var at = Volatile.Read(ref _lastLeaderContact);
            return at == 0 ? -1 : (long)Stopwatch.GetElapsedTime(at).TotalMilliseconds;
        }
    }

    // ---- scrape side ----

    /// <summary>The loop's gauges, fetched at most once per <see cref="FetchReuse"/>; null if the loop never answered.</summary>
    internal NodeGauges? Gauges()
    {
        lock (_gaugeGate)
        {
            if (_fetch is null) return null;
            if (_gauges is not null && Stopwatch.GetElapsedTime(_gaugesAt) < FetchReuse) return _gauges;
            var task = _fetch();
            // The loop answers within a turn; one stuck in a long fsync leaves the last values.
            if (!task.Wait(FetchTimeout) || !task.IsCompletedSuccessfully) return _gauges;
            var next = task.Result;
            // Counters only go up: a resume rereads the log and may start from a lower commit index.
            _committedTotal += _gauges is null ? next.CommitIndex : Math.Max(0, next.CommitIndex - _gauges.CommitIndex);
            _appliedTotal += _gauges is null ? next.AppliedIndex : Math.Max(0, next.AppliedIndex - _gauges.AppliedIndex);
            _gauges = next;
            _gaugesAt = Stopwatch.GetTimestamp();
            return next;
        }
    }

    private IEnumerable<Measurement<long>> ObserveView(Func<NodeView, long> read) =>
        _view is { } view ? [new Measurement<long>(read(view()))] : [];

    private IEnumerable<Measurement<long>> Observe(Func<NodeGauges, long> read) =>
        Gauges() is { } g ? [new Measurement<long>(read(g))] : [];

    private IEnumerable<Measurement<long>> ObserveTotal(ref long total)
    {
        if (Gauges() is null) return [];
        lock (_gaugeGate) return [new Measurement<long>(total)];
    }

    private IEnumerable<Measurement<long>> PeerLag()
    {
        if (Gauges() is not { } g || g.Peers.Count == 0) return [];
        var result = new Measurement<long>[g.Peers.Count];
        for (var i = 0; i < result.Length; i++)
            result[i] = new Measurement<long>(Math.Max(0, g.LastIndex - g.Peers[i].MatchIndex),
                new KeyValuePair<string, object?>("peer", PeerLabel(g.Peers[i].Id)));
        return result;
    }

    private static readonly string[] SmallIds = Enumerable.Range(0, 16).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
    private static string PeerLabel(int id) => (uint)id < SmallIds.Length ? SmallIds[id] : id.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public void Dispose() => _meter.Dispose();
}

/// <summary>How a client call counts for the reads/s and writes/s of the live view.</summary>
public enum RequestKind { Other, Read, Write }
