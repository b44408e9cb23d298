using RaftServer.Consensus;
using RaftServer.StateMachine;

namespace RaftServer.Hosting;

/// <summary>
/// The client requests the node loop is holding (model: etcd's <c>wait</c> package), and the rules
/// that answer them:
/// <list type="bullet">
/// <item>a write waits under its entry's index; only the entry applied there <em>with the term it
/// was proposed in</em> answers it (another term's entry means the proposal was lost in a leader
/// change: Unavailable, the client retries with its session);</item>
/// <item>linearizable reads that arrive in one loop turn share one read-index request; once the
/// core returns its index, each read is answered when the state machine has applied it;</item>
/// <item>leadership lost fails every waiting write; a snapshot installed over a write's index
/// fails it as outcome-unknown; suspend and stop fail everything;</item>
/// <item>safety nets: a read whose index never comes back, or a write not applied, within its
/// timeout (in loop ticks) is answered Unavailable, so nobody waits forever.</item>
/// </list>
/// Owned by the loop thread: not thread-safe. Completing a request never runs client code here
/// (continuations are asynchronous).
/// </summary>
public sealed class PendingRequests(long readTimeoutTicks, long writeTimeoutTicks, Action<PendingRead> answer)
{
    private sealed record ReadBatch(List<PendingRead> Reads, long Tick);

    private readonly Dictionary<long, PendingWrite> _writes = new();
    /// <summary>Linearizable reads that arrived this turn: they share one read index request.</summary>
    private List<PendingRead> _readBatch = new();
    private readonly Dictionary<long, ReadBatch> _readsById = new();
    private readonly List<PendingRead> _readsWaitingApply = new();
    private long _nextReadId;

    public int Writes => _writes.Count;
    /// <summary>Writes the core accepted that were answered Unavailable instead of applied (metrics).</summary>
    public long WritesFailed { get; private set; }
    /// <summary>Read-index requests started, one per batch (metrics).</summary>
    public long ReadBatchesStarted { get; private set; }
    /// <summary>Reads held: this turn's batch, those waiting for their read index, those waiting for the apply (asked every turn: no allocation).</summary>
    public int Reads
    {
        get
        {
            var n = _readBatch.Count + _readsWaitingApply.Count;
            foreach (var batch in _readsById.Values) n += batch.Reads.Count;
            return n;
        }
    }

    // ---- writes ----

    /// <summary>A write the core accepted at <paramref name="index"/> in <paramref name="term"/>.
    /// A write still waiting at that index (its entry was overwritten by a new leader's) fails.</summary>
    public void AddWrite(PendingWrite write, long index, long term, long tick)
    {
        write.Index = index;
        write.Term = term;
        write.Tick = tick;
        if (_writes.Remove(index, out var replaced))
            Fail(replaced, "the entry was replaced", SoftState.NoLeader);
        _writes[index] = write;
    }

    /// <summary>The entry at <paramref name="entry"/>.Index was applied with <paramref name="result"/>: answers its write, if one waits there.</summary>
    public void Applied(Entry entry, ApplyResult result, int leaderHint)
    {
        if (_writes.Count == 0 || !_writes.Remove(entry.Index, out var w)) return;
        if (w.Term != entry.Term)
            Fail(w, "leadership changed before the write committed", leaderHint);
        else if (result.Status == ApplyStatus.Stale)
            w.TrySetResult(new WriteOutcome(OutcomeCode.Stale, default, SoftState.NoLeader, "the sequence number is older than the client's session window"));
        else if (result.Status == ApplyStatus.None)
            w.TrySetResult(new WriteOutcome(OutcomeCode.Ok, new WriteResult(entry.Index, false), SoftState.NoLeader, null)); // a configuration
        else
            w.TrySetResult(new WriteOutcome(OutcomeCode.Ok, result.Result, SoftState.NoLeader, null));
    }

    /// <summary>This node stopped leading: its proposals may or may not survive under the new
    /// leader, so every waiting write is answered Unavailable now (a retry with the same client id
    /// and sequence applies at most once).</summary>
    public void FailWrites(string reason, int leaderHint)
    {
        foreach (var w in _writes.Values) Fail(w, reason, leaderHint);
        _writes.Clear();
    }

    /// <summary>A snapshot was installed up to <paramref name="index"/>: writes waiting at or below
    /// it will never see their entry applied here, so their outcome is unknown.</summary>
    public void FailWritesThrough(long index, string reason, int leaderHint)
    {
        if (_writes.Count == 0) return;
        foreach (var i in _writes.Keys.Where(i => i <= index).ToList())
        {
            _writes.Remove(i, out var w);
            Fail(w!, reason, leaderHint);
        }
    }

    private void Fail(PendingWrite w, string reason, int leaderHint)
    {
        if (w.TrySetResult(Unavailable(reason, leaderHint))) WritesFailed++;
    }

    // ---- reads ----

    /// <summary>A linearizable read: it joins this turn's batch.</summary>
    public void AddRead(PendingRead read) => _readBatch.Add(read);

    /// <summary>
    /// At the end of a turn: asks the core for one read index for the turn's reads
    /// (<paramref name="readIndex"/> is <see cref="RaftNode.ReadIndex"/>); when it cannot start
    /// (no leader known) they fail at once.
    /// </summary>
    public void StartReadBatch(Func<long, bool> readIndex, long tick, int leaderHint)
    {
        if (_readBatch.Count == 0) return;
        var batch = _readBatch;
        _readBatch = new List<PendingRead>();
        ReadBatchesStarted++;
        var id = ++_nextReadId;
        if (!readIndex(id))
        {
            var failed = ReadFailed("no leader is known", leaderHint);
            foreach (var r in batch) r.TrySetResult(failed);
            return;
        }
        _readsById[id] = new ReadBatch(batch, tick);
    }

    /// <summary>The core's answer to a read-index request: its reads are answered now if
    /// <paramref name="applied"/> covers the index, later (<see cref="AnswerApplied"/>) if not.</summary>
    public void ReadIndexDone(ReadState state, long applied, int leaderHint, long tick)
    {
        if (!_readsById.Remove(state.RequestId, out var batch)) return;
        foreach (var read in batch.Reads)
        {
            if (state.Index < 0)
            {
                read.TrySetResult(ReadFailed("leadership could not be confirmed", leaderHint));
                continue;
            }
            read.Index = state.Index;
            read.Tick = tick;
            if (applied >= state.Index) answer(read);
            else _readsWaitingApply.Add(read);
        }
    }

    /// <summary>The state machine has applied up to <paramref name="applied"/>: answers the reads it covers.</summary>
    public void AnswerApplied(long applied)
    {
        if (_readsWaitingApply.Count == 0) return;
        _readsWaitingApply.RemoveAll(read =>
        {
            if (read.Index > applied) return false;
            answer(read);
            return true;
        });
    }

    // ---- timeouts and failures ----

    /// <summary>The safety nets: reads whose read index did not come back, reads whose index this
    /// node has not applied (within the write timeout: the node is behind), and writes not applied,
    /// within their timeouts (counted in ticks up to <paramref name="tick"/>) are answered Unavailable.</summary>
    public void Expire(long tick, int leaderHint)
    {
        if (_readsWaitingApply.Count > 0)
            _readsWaitingApply.RemoveAll(read =>
            {
                if (read.Tick >= tick - writeTimeoutTicks) return false;
                read.TrySetResult(ReadFailed("this node did not apply the read index in time (it is behind the leader)", leaderHint));
                return true;
            });
        if (_readsById.Count > 0)
            foreach (var (id, batch) in _readsById)
                if (batch.Tick < tick - readTimeoutTicks)
                {
                    _readsById.Remove(id);
                    foreach (var read in batch.Reads) read.TrySetResult(ReadFailed("the read index was not confirmed in time", leaderHint));
                }
        if (_writes.Count > 0)
            foreach (var (index, w) in _writes)
                if (w.Tick < tick - writeTimeoutTicks || w.Task.IsCompleted)
                {
                    _writes.Remove(index);
                    Fail(w, "the write was not committed in time", leaderHint);
                }
    }

    /// <summary>Answers every request Unavailable (suspend, stop, a fatal error).</summary>
    public void FailAll(string reason, int leaderHint)
    {
        FailWrites(reason, leaderHint);
        var failed = ReadFailed(reason, leaderHint);
        foreach (var b in _readsById.Values)
            foreach (var r in b.Reads) r.TrySetResult(failed);
        _readsById.Clear();
        foreach (var r in _readBatch) r.TrySetResult(failed);
        _readBatch.Clear();
        foreach (var r in _readsWaitingApply) r.TrySetResult(failed);
        _readsWaitingApply.Clear();
    }

    public static WriteOutcome Unavailable(string reason, int leaderHint) => new(OutcomeCode.Unavailable, default, leaderHint, reason);

    public static ReadOutcome ReadFailed(string reason, int leaderHint) => new(OutcomeCode.Unavailable, false, null, null, false, leaderHint, reason);
}
