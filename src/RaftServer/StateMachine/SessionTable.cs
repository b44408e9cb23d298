using System.Collections.Immutable;
using System.Runtime.InteropServices;

namespace RaftServer.StateMachine;

/// <summary>How a write came out (a failed condition is an answer, not an error).</summary>
public enum WriteStatus : byte
{
    /// <summary>Applied (a Remove of a missing key and a Revoke of an unknown lease included: see Existed).</summary>
    Done = 0,
    /// <summary>The write's condition did not hold: nothing changed.</summary>
    CompareFailed = 1,
    /// <summary>A Put named a lease that does not exist (expired or revoked): nothing changed.</summary>
    LeaseNotFound = 2,
}

/// <summary>
/// The first result of a write, remembered so a retry gets the same answer.
/// </summary>
/// <param name="Index">The log index of the write (for a LeaseGrant: the lease's id).</param>
/// <param name="Existed">Put, Remove: the key existed before; LeaseRevoke: the lease existed.</param>
/// <param name="Revision">The store's revision after the write.</param>
/// <param name="KeyRevision">Put, Remove that changed the key: the key's new mod revision (the
/// write's revision); a failed condition: the key's mod revision at that moment (0: absent).</param>
public readonly record struct WriteResult(long Index, bool Existed, WriteStatus Status = WriteStatus.Done, long Revision = 0, long KeyRevision = 0);

public enum SessionCheck { New, Duplicate, Stale }

/// <summary>
/// Client sessions for exactly-once writes (Raft dissertation 6.3), deterministic on every replica:
/// each client id keeps the results of its last <see cref="Window"/> applied sequence numbers (so
/// one client may have that many writes in flight), a session idle for <see cref="Ttl"/> of
/// log time (the leaders' timestamps carried in the commands, never a replica's own clock) is
/// dropped, and past <see cref="MaxSessions"/> the least recently used session goes.
/// </summary>
public sealed class SessionTable
{
    public const int Window = 64;
    public static readonly TimeSpan DefaultTtl = TimeSpan.FromMinutes(10);
    public const int DefaultMaxSessions = 16384;

    private sealed class Session(ulong id)
    {
        public readonly ulong Id = id;
        public readonly Dictionary<ulong, WriteResult> Results = new();
        public readonly Queue<ulong> Order = new();
        public ulong MaxEvicted;
        public long LastUsed;
        public LinkedListNode<Session>? Node;
    }

    private readonly Dictionary<ulong, Session> _sessions = new();
    private readonly LinkedList<Session> _lru = new();
    private long _now;

    public TimeSpan Ttl { get; }
    public int MaxSessions { get; }
    public int Count => _sessions.Count;

    public SessionTable(TimeSpan? ttl = null, int maxSessions = DefaultMaxSessions)
    {
        Ttl = ttl ?? DefaultTtl;
        MaxSessions = maxSessions;
    }

    /// <summary>Advances log time (monotonic: a leader with a slower clock cannot move it back) and expires idle sessions.</summary>
    public void AdvanceTime(long timestampMs)
    {
        if (timestampMs > _now) _now = timestampMs;
        var horizon = _now - (long)Ttl.TotalMilliseconds;
        while (_lru.First is { } oldest && oldest.Value.LastUsed < horizon)
            Remove(oldest.Value);
    }

    public SessionCheck Check(ulong clientId, ulong sequence, out WriteResult previous)
    {
        previous = default;
        if (!_sessions.TryGetValue(clientId, out var s)) return SessionCheck.New;
        if (s.Results.TryGetValue(sequence, out previous)) return SessionCheck.Duplicate;
        return sequence <= s.MaxEvicted ? SessionCheck.Stale : SessionCheck.New;
    }

    public void Record(ulong clientId, ulong sequence, WriteResult result)
    {
        if (!_sessions.TryGetValue(clientId, out var s))
        {
            if (_sessions.Count >= MaxSessions && _lru.First is { } oldest) Remove(oldest.Value);
            s = new Session(clientId);
            _sessions.Add(clientId, s);
            s.Node = _lru.AddLast(s);
        }
        else
        {
            _lru.Remove(s.Node!);
            _lru.AddLast(s.Node!);
        }
        s.LastUsed = _now;
        s.Results[sequence] = result;
        s.Order.Enqueue(sequence);
        if (s.Order.Count > Window)
        {
            var evicted = s.Order.Dequeue();
            s.Results.Remove(evicted);
            if (evicted > s.MaxEvicted) s.MaxEvicted = evicted;
        }
    }

    private void Remove(Session s)
    {
        _lru.Remove(s.Node!);
        _sessions.Remove(s.Id);
    }

    /// <summary>
    /// Copies the table's state (for a snapshot): O(sessions + remembered writes), no allocation
    /// per write. A session's Results and Order always hold the same sequences (Record only adds a
    /// sequence Check called New, so never one already present, and eviction removes from both),
    /// so the queue order with each sequence's result is the whole session.
    /// </summary>
    public SessionTableImage CaptureImage()
    {
        var sessions = new SessionImage[_lru.Count];
        var i = 0;
        foreach (var s in _lru)
        {
            var writes = new RememberedWrite[s.Order.Count];
            var j = 0;
            foreach (var sequence in s.Order) writes[j++] = new RememberedWrite(sequence, s.Results[sequence]);
            if (s.Results.Count != writes.Length)
                throw new InvalidOperationException($"session {s.Id}: {s.Results.Count} results but {writes.Length} sequences in its window");
            sessions[i++] = new SessionImage(s.Id, s.LastUsed, s.MaxEvicted, ImmutableCollectionsMarshal.AsImmutableArray(writes));
        }
        return new SessionTableImage(_now, ImmutableCollectionsMarshal.AsImmutableArray(sessions));
    }

    /// <summary>A table in the state <paramref name="image"/> describes, with this configuration.</summary>
    /// <exception cref="ArgumentException">the image is inconsistent (a client twice, a sequence twice in one session, more than <see cref="Window"/> writes).</exception>
    public static SessionTable FromImage(SessionTableImage image, TimeSpan? ttl = null, int maxSessions = DefaultMaxSessions)
    {
        var table = new SessionTable(ttl, maxSessions) { _now = image.Now };
        foreach (var si in image.Sessions)
        {
            if (si.Writes.Length > Window)
                throw new ArgumentException($"session {si.ClientId}: {si.Writes.Length} remembered writes, more than the window of {Window}");
            var s = new Session(si.ClientId) { LastUsed = si.LastUsed, MaxEvicted = si.MaxEvicted };
            if (!table._sessions.TryAdd(si.ClientId, s))
                throw new ArgumentException($"session {si.ClientId} appears twice");
            foreach (var w in si.Writes)
            {
                if (!s.Results.TryAdd(w.Sequence, w.Result))
                    throw new ArgumentException($"session {si.ClientId}: sequence {w.Sequence} appears twice");
                s.Order.Enqueue(w.Sequence);
            }
            s.Node = table._lru.AddLast(s);
        }
        return table;
    }
}
