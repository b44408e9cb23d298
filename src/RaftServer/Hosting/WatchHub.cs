using System.Collections.Concurrent;
using RaftServer.StateMachine;

namespace RaftServer.Hosting;

/// <summary>One change in the watch window: an applied <see cref="KvEvent"/> with its place in the window.</summary>
public sealed class WatchedEvent(long seq, KvEvent change)
{
    /// <summary>Position in the window's sequence (one per event, never reused).</summary>
    public long Seq { get; } = seq;
    public KvEvent Change { get; } = change;
    public long Revision => Change.Revision;
    /// <summary>Roughly what the event holds in memory (its value is usually shared with the store).</summary>
    public long Bytes => WatchHub.EventBytes(Change);
}

/// <summary>Why the hub ended a watcher.</summary>
public enum WatchEnd
{
    /// <summary>Not ended.</summary>
    None,
    /// <summary>Revisions the watcher still needs left the window: the client must read the state again.</summary>
    Compacted,
    /// <summary>The node is suspending or stopping: resume from the last revision + 1 elsewhere.</summary>
    NodeStopping,
    /// <summary>The watcher stayed blocked sending while the revisions it needs left the window.</summary>
    TooSlow,
}

/// <summary>
/// The node's window of recent history for watchers, and the watchers reading it.
/// <para>
/// The node loop appends the changes of each applied entry (<see cref="Append"/>) into one ring of
/// immutable events and wakes the readers once per Ready (<see cref="Publish"/>): O(1) per event
/// on the loop, whatever the number of watchers, and nothing on the loop ever waits for one. Each
/// watcher's stream task reads the ring at its own pace from its own cursor (no lock: a slot holds
/// a reference to an immutable event that carries its sequence number, so a reader sees either the
/// event it wants or one that replaced it). The ring is bounded by events and by bytes; the oldest
/// whole revisions leave first, and <see cref="CompactedRevision"/> is the newest revision that
/// left. A watcher that still needed one of them is ended as compacted. So memory is the window,
/// not a buffer per watcher: one slow watcher costs its cursor and the one reply it is sending.
/// </para>
/// <para>
/// Events are those of the committed log as this node applies it, so every node's window holds the
/// same events for the same revisions: a client resumes anywhere from its last revision + 1.
/// </para>
/// </summary>
public sealed class WatchHub
{
    public const int DefaultCapacity = 1 << 16;
    public const long DefaultMaxBytes = 64L << 20;
    public const int DefaultMaxWatchers = 10_000;

    private readonly WatchedEvent?[] _slots;
    private readonly int _mask;
    private readonly long _maxBytes;
    private readonly Action<Action> _schedule;
    private readonly Action _notify;

    // Written by the loop thread only; read by watchers.
    private long _published;        // the next sequence number to be written
    private long _oldest;           // the oldest sequence number still in the window
    private long _compactedRevision;
    private long _revision;         // the store's revision as of the last append or reset
    private long _bytes;            // loop thread only
    private bool _dirty;            // loop thread only: appended since the last Publish
    private int _evictedSinceSweep;

    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _notifyQueued;
    private readonly long _gatherTicks;
    private long _lastWake;
    private readonly ConcurrentDictionary<Watcher, byte> _watchers = new();
    private int _watcherCount;

    /// <param name="capacity">Events kept at most (rounded up to a power of two).</param>
    /// <param name="maxBytes">Bytes of keys and values kept at most (whole revisions leave first).</param>
    /// <param name="schedule">Runs wake-ups and cancellations off the loop thread (the thread pool; tests run them inline).</param>
    /// <param name="gather">After a wake-up, the next waits at least this long, so that under a stream
    /// of writes each watcher sends several changes per reply instead of one reply per write.</param>
    public WatchHub(int capacity = DefaultCapacity, long maxBytes = DefaultMaxBytes, int maxWatchers = DefaultMaxWatchers, Action<Action>? schedule = null,
        TimeSpan gather = default)
    {
        _gatherTicks = (long)(gather.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
        if (capacity < 2) throw new ArgumentOutOfRangeException(nameof(capacity));
        var size = (int)Math.Min(1 << 30, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)capacity));
        _slots = new WatchedEvent?[size];
        _mask = size - 1;
        _maxBytes = maxBytes;
        MaxWatchers = maxWatchers;
        _schedule = schedule ?? (static a => ThreadPool.UnsafeQueueUserWorkItem(static s => ((Action)s!)(), a));
        _notify = Notify;
    }

    public int Capacity => _slots.Length;
    public int MaxWatchers { get; }
    /// <summary>The newest revision no longer in the window: a watch can start at this + 1 or later.</summary>
    public long CompactedRevision => Volatile.Read(ref _compactedRevision);
    /// <summary>The store's revision as of the last change the hub was given.</summary>
    public long Revision => Volatile.Read(ref _revision);
    public int Watchers => Volatile.Read(ref _watcherCount);
    /// <summary>Events in the window now.</summary>
    public long Events => Volatile.Read(ref _published) - Volatile.Read(ref _oldest);

    /// <summary>Completed (and replaced) after new events are published; read it before reading the ring.</summary>
    internal Task Changed => Volatile.Read(ref _changed).Task;

    // ---- the loop thread ----

    /// <summary>
    /// The store now stands at <paramref name="revision"/> without the events that led there (start,
    /// restart, a leader's snapshot installed): the window empties and starts after it. A watcher
    /// that still needs a revision up to it is ended as compacted when it next reads.
    /// </summary>
    public void Reset(long revision)
    {
        Volatile.Write(ref _compactedRevision, revision);
        Volatile.Write(ref _revision, revision);
        var published = _published;
        for (var seq = _oldest; seq < published; seq++) Volatile.Write(ref _slots[seq & _mask], null);
        Volatile.Write(ref _oldest, published);
        _bytes = 0;
        _dirty = true;
        Interlocked.Exchange(ref _evictedSinceSweep, 1);
    }

    /// <summary>The changes of one applied entry (all at <paramref name="revision"/>), in order.</summary>
    public void Append(ReadOnlySpan<KvEvent> changes, long revision)
    {
        if (changes.IsEmpty) return;
        if (changes.Length > _slots.Length)
        {
            // More changes than the window holds (a lease with that many keys): the revision is
            // compacted at once for anyone who needs it.
            Reset(revision);
            return;
        }
        // Room for the whole entry first: a revision is never split across the window's edge.
        long needed = 0;
        foreach (var c in changes) needed += EventBytes(c);
        while (_published > _oldest && (_published - _oldest + changes.Length > _slots.Length || _bytes + needed > _maxBytes))
            EvictOldestRevision();

        var seq = _published;
        foreach (var c in changes)
        {
            var e = new WatchedEvent(seq, c);
            Volatile.Write(ref _slots[seq & _mask], e);
            _bytes += e.Bytes;
            seq++;
        }
        Volatile.Write(ref _revision, revision);
        Volatile.Write(ref _published, seq);
        _dirty = true;
    }

    internal static long EventBytes(in KvEvent c) => 96 + c.Item.Key.Length * 2L + c.Item.Value.Length;

    /// <summary>The revision of the oldest event leaves, with every other event of that revision.
    /// The compacted revision is raised before any slot is cleared, so a reader that finds its slot
    /// gone also finds the revision it lost.</summary>
    private void EvictOldestRevision()
    {
        var first = _slots[_oldest & _mask]!;
        var revision = first.Revision;
        if (revision > _compactedRevision) Volatile.Write(ref _compactedRevision, revision);
        var seq = _oldest;
        while (seq < _published && _slots[seq & _mask] is { } e && e.Revision == revision)
        {
            _bytes -= e.Bytes;
            seq++;
        }
        // Clearing the slots releases the events; _oldest moves first so readers see the hole as eviction.
        var from = _oldest;
        Volatile.Write(ref _oldest, seq);
        for (var s = from; s < seq; s++) Volatile.Write(ref _slots[s & _mask], null);
        Interlocked.Exchange(ref _evictedSinceSweep, 1);
    }

    /// <summary>After a Ready: wakes the watchers once if anything was appended (the wake-up itself
    /// runs off the loop thread).</summary>
    public void Publish()
    {
        if (!_dirty) return;
        _dirty = false;
        if (Interlocked.Exchange(ref _notifyQueued, 1) == 0) _schedule(_notify);
    }

    private void Notify()
    {
        if (_gatherTicks > 0)
        {
            var wait = Volatile.Read(ref _lastWake) + _gatherTicks - System.Diagnostics.Stopwatch.GetTimestamp();
            if (wait > 0)
            {
                // A wake-up went out moments ago: let more changes gather (later Publishes see this one queued).
                _ = Task.Delay(TimeSpan.FromSeconds((double)wait / System.Diagnostics.Stopwatch.Frequency))
                    .ContinueWith(static (_, hub) => ((WatchHub)hub!).Wake(), this, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
                return;
            }
        }
        Wake();
    }

    private void Wake()
    {
        Volatile.Write(ref _lastWake, System.Diagnostics.Stopwatch.GetTimestamp());
        Volatile.Write(ref _notifyQueued, 0);
        var old = Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        old.TrySetResult();
        if (Interlocked.Exchange(ref _evictedSinceSweep, 0) == 1) Sweep();
    }

    /// <summary>Ends every watcher (suspend, stop); the cancellations run off the calling thread.</summary>
    public void CancelAll(WatchEnd reason, string detail)
    {
        foreach (var w in _watchers.Keys) w.End(reason, detail, _schedule);
    }

    /// <summary>Ends the watchers that are blocked sending while the events they need next left the
    /// window: their clients stopped reading, and waiting longer cannot help them.</summary>
    private void Sweep()
    {
        var oldest = Volatile.Read(ref _oldest);
        var compacted = Volatile.Read(ref _compactedRevision);
        foreach (var w in _watchers.Keys)
            if (w.Sending && w.Cursor < oldest && compacted >= w.NextRevision)
                w.End(WatchEnd.TooSlow, $"the watcher stopped reading while the revisions it needs left this node's window (the oldest kept is {compacted + 1})", static a => a());
    }

    // ---- watchers (any thread) ----

    /// <summary>
    /// A watcher of <paramref name="key"/> (or of every key under it, with <paramref name="prefix"/>)
    /// from <paramref name="startRevision"/> (0: after the current revision). Dispose it when done.
    /// </summary>
    /// <exception cref="WatchCompactedException">the start is at or before <see cref="CompactedRevision"/>.</exception>
    /// <exception cref="InvalidOperationException">already <see cref="MaxWatchers"/> watchers.</exception>
    public Watcher Open(string key, bool prefix, long startRevision)
    {
        if (Interlocked.Increment(ref _watcherCount) > MaxWatchers)
        {
            Interlocked.Decrement(ref _watcherCount);
            throw new InvalidOperationException($"this node already serves {MaxWatchers} watchers");
        }
        try
        {
            var start = startRevision > 0 ? startRevision : Revision + 1;
            var compacted = CompactedRevision;
            if (start <= compacted) throw new WatchCompactedException(start, compacted);
            var w = new Watcher(this, key, prefix, start, LowerBound(start));
            _watchers.TryAdd(w, 0);
            return w;
        }
        catch
        {
            Interlocked.Decrement(ref _watcherCount);
            throw;
        }
    }

    internal void Close(Watcher w)
    {
        if (_watchers.TryRemove(w, out _)) Interlocked.Decrement(ref _watcherCount);
    }

    /// <summary>A sequence number at or before the first event of <paramref name="revision"/> or
    /// later: a binary search over the window (any event it skips has a smaller revision). Eviction
    /// racing with it only makes the reader skip ahead later.</summary>
    private long LowerBound(long revision)
    {
        var lo = Volatile.Read(ref _oldest);
        var hi = Volatile.Read(ref _published);
        while (lo < hi)
        {
            var mid = lo + (hi - lo) / 2;
            var e = Volatile.Read(ref _slots[mid & _mask]);
            if (e is null || e.Seq != mid) return Volatile.Read(ref _oldest);
            if (e.Revision < revision) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    /// <summary>Reads the window for one watcher (see <see cref="Watcher.Read"/>).</summary>
    internal WatchRead Read(Watcher w, List<WatchedEvent> into, int maxEvents, long maxBytes)
    {
        var published = Volatile.Read(ref _published);
        var cursor = w.Cursor;
        var next = w.NextRevision;
        // Every revision up to the compacted one has left (or, after a reset, was never here): a
        // watcher that still needs one of them has lost it, whether or not its slot is in view.
        var compactedNow = Volatile.Read(ref _compactedRevision);
        if (compactedNow >= next) return new WatchRead(WatchReadStatus.Lost, compactedNow);
        long scanned = 0, bytes = 0;
        var start = into.Count;
        while (cursor < published)
        {
            var e = Volatile.Read(ref _slots[cursor & _mask]);
            if (e is null || e.Seq != cursor)
            {
                var compacted = Volatile.Read(ref _compactedRevision);
                if (compacted >= next)
                {
                    into.RemoveRange(start, into.Count - start);
                    return new WatchRead(WatchReadStatus.Lost, compacted);
                }
                cursor = Math.Max(cursor + 1, Volatile.Read(ref _oldest));
                continue;
            }
            if (e.Revision < next)
            {
                cursor++;
                continue;
            }
            // A reply never splits a revision: stop only where a new one begins.
            if (e.Revision != scanned && (into.Count - start >= maxEvents || bytes >= maxBytes)) break;
            if (w.Matches(e.Change.Item.Key))
            {
                into.Add(e);
                bytes += e.Bytes;
            }
            scanned = e.Revision;
            cursor++;
        }
        w.Advance(cursor, scanned > 0 ? scanned + 1 : next);
        return new WatchRead(into.Count > start ? WatchReadStatus.Events : WatchReadStatus.Idle, 0);
    }
}

public enum WatchReadStatus { Idle, Events, Lost }

/// <param name="CompactedRevision">When Lost: the newest revision no longer in the window.</param>
public readonly record struct WatchRead(WatchReadStatus Status, long CompactedRevision);

/// <summary>A watch asked to start before the node's window of history.</summary>
public sealed class WatchCompactedException(long start, long compacted)
    : Exception($"revision {start} is no longer in this node's window of history (it keeps revisions after {compacted})")
{
    public long CompactedRevision { get; } = compacted;
}

/// <summary>
/// One watch: a key or prefix and the next revision it wants. Read by one stream task at a time;
/// the hub may end it from another thread (suspend, stop, a blocked sender).
/// </summary>
public sealed class Watcher : IDisposable
{
    private readonly WatchHub _hub;
    private readonly CancellationTokenSource _cancel = new();
    private long _cursor;
    private long _next;
    private int _sending;
    private int _ended;

    internal Watcher(WatchHub hub, string key, bool prefix, long start, long cursor)
    {
        _hub = hub;
        Key = key;
        Prefix = prefix;
        StartRevision = start;
        _next = start;
        _cursor = cursor;
    }

    public string Key { get; }
    public bool Prefix { get; }
    public long StartRevision { get; }
    /// <summary>Every matching event before this revision has been read.</summary>
    public long NextRevision => Volatile.Read(ref _next);
    internal long Cursor => Volatile.Read(ref _cursor);
    /// <summary>Cancelled when the hub ends the watcher; <see cref="EndReason"/> says why.</summary>
    public CancellationToken Ended => _cancel.Token;
    public WatchEnd EndReason { get; private set; }
    public string EndDetail { get; private set; } = "";
    /// <summary>Set by the stream while a reply is being sent (for the hub's sweep of stuck senders).</summary>
    public bool Sending
    {
        get => Volatile.Read(ref _sending) == 1;
        set => Volatile.Write(ref _sending, value ? 1 : 0);
    }

    /// <summary>Completed when new events may be there; take it before <see cref="Read"/>.</summary>
    public Task Changed => _hub.Changed;

    public bool Matches(string key) => Prefix ? key.StartsWith(Key, StringComparison.Ordinal) : key == Key;

    /// <summary>
    /// Adds the matching events after those already read to <paramref name="into"/>: whole
    /// revisions, in order, stopping once <paramref name="maxEvents"/> or
    /// <paramref name="maxBytes"/> is reached. Lost when revisions it needs left the window.
    /// </summary>
    public WatchRead Read(List<WatchedEvent> into, int maxEvents = 1000, long maxBytes = 1 << 20) => _hub.Read(this, into, maxEvents, maxBytes);

    internal void Advance(long cursor, long next)
    {
        Volatile.Write(ref _cursor, cursor);
        Volatile.Write(ref _next, next);
    }

    internal void End(WatchEnd reason, string detail, Action<Action> schedule)
    {
        if (Interlocked.Exchange(ref _ended, 1) == 1) return;
        EndReason = reason;
        EndDetail = detail;
        schedule(() =>
        {
            try
            {
                _cancel.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // The stream ended meanwhile.
            }
        });
    }

    public void Dispose()
    {
        _hub.Close(this);
        Interlocked.Exchange(ref _ended, 1);
        _cancel.Dispose();
    }
}
