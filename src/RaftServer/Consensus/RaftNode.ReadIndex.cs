namespace RaftServer.Consensus;

/// <summary>
/// Linearizable reads without writing to the log (thesis §6.4, read index): the leader notes its
/// commit index, confirms it is still leader by a heartbeat round a majority answers, and the
/// read is served once the state machine has applied up to that index. A follower asks the leader
/// for the index (ReadIndex / ReadIndexResponse) and serves the read from its own state machine.
/// </summary>
public sealed partial class RaftNode
{
    private readonly record struct PendingRead(int From, long RequestId, long Index, long Round, long StartedTick);
    private readonly record struct ForwardedRead(long RequestId, long StartedTick);

    /// <summary>Reads that arrived before an entry of this term was committed (thesis §6.4 step 1:
    /// until then the leader does not know the latest commit index).</summary>
    private readonly List<PendingRead> deferredReads = new();
    /// <summary>Reads waiting for their heartbeat round, in round order.</summary>
    private readonly Queue<PendingRead> pendingReads = new();
    private readonly List<ForwardedRead> forwardedReads = new();
    /// <summary>The last heartbeat round started; heartbeats carry it as Context.</summary>
    private long readRound;
    /// <summary>Reads wait for round readRound + 1, which starts at the end of this turn.</summary>
    private bool readRoundPending;

    /// <summary>How long a read may wait for its answer before it is failed (Index -1).</summary>
    private int ReadTimeoutTicks => 2 * options.ElectionTicks;

    /// <summary>Ask for a linearizable read index; the answer comes as a ReadState with this id
    /// (Index &lt; 0: failed, retry or answer Unavailable). False when it cannot start (no leader
    /// known). Ids must be unique among this node's pending reads.</summary>
    public bool ReadIndex(long requestId)
    {
        if (role == Role.Leader)
        {
            AcceptRead(Id, requestId);
            return true;
        }
        if (leaderId == SoftState.NoLeader) return false;
        Send(new Message { Type = MessageType.ReadIndex, From = Id, To = leaderId, Term = term, Context = requestId });
        forwardedReads.Add(new ForwardedRead(requestId, tickCount));
        return true;
    }

    private void HandleReadIndexRequest(Message m)
    {
        if (role != Role.Leader)
        {
            // Not (or no longer) the leader: fail the asker fast rather than let it time out.
            Send(new Message { Type = MessageType.ReadIndexResponse, From = Id, To = m.From, Term = term, Context = m.Context, Index = -1, Reject = true });
            return;
        }
        if (!IsMember(m.From)) return;
        AcceptRead(m.From, m.Context);
    }

    private void AcceptRead(int from, long requestId)
    {
        if (!committedInTerm)
        {
            deferredReads.Add(new PendingRead(from, requestId, 0, 0, tickCount));
            return;
        }
        if (Quorum == 1 && config.IsVoter(Id))
        {
            Release(from, requestId, log.Committed);
            return;
        }
        // Every read that arrives in this turn joins the same round: one heartbeat per peer.
        pendingReads.Enqueue(new PendingRead(from, requestId, log.Committed, readRound + 1, tickCount));
        readRoundPending = true;
    }

    private void ReleaseDeferredReads()
    {
        if (deferredReads.Count == 0) return;
        var reads = deferredReads.ToArray();
        deferredReads.Clear();
        foreach (var read in reads) AcceptRead(read.From, read.RequestId);
    }

    private void StartReadRoundIfNeeded()
    {
        if (!readRoundPending) return;
        readRoundPending = false;
        readRound++;
        self.ReadRoundAcked = readRound;
        foreach (var pr in progress)
            if (pr != self) SendHeartbeat(pr, readRound);
    }

    /// <summary>A heartbeat answer in our term proves the peer still followed us after the round
    /// <paramref name="round"/> began; a majority of such proofs confirms that round's reads.</summary>
    private void HandleReadAck(Progress pr, long round)
    {
        if (round <= pr.ReadRoundAcked) return;
        pr.ReadRoundAcked = round;
        while (pendingReads.Count > 0)
        {
            var read = pendingReads.Peek();
            if (!RoundConfirmed(read.Round)) break;
            pendingReads.Dequeue();
            Release(read.From, read.RequestId, read.Index);
        }
    }

    private bool RoundConfirmed(long round)
    {
        int acks = 0;
        for (int i = 0; i < progress.Length; i++)
            if (isVoter[i] && progress[i].ReadRoundAcked >= round) acks++;
        return acks >= Quorum;
    }

    private void Release(int from, long requestId, long index)
    {
        if (from == Id) readStates.Add(new ReadState(requestId, index));
        else Send(new Message { Type = MessageType.ReadIndexResponse, From = Id, To = from, Term = term, Context = requestId, Index = index });
    }

    private void Fail(int from, long requestId)
    {
        if (from == Id) readStates.Add(new ReadState(requestId, -1));
        else Send(new Message { Type = MessageType.ReadIndexResponse, From = Id, To = from, Term = term, Context = requestId, Index = -1, Reject = true });
    }

    /// <summary>Leadership lost: no pending read can be confirmed any more.</summary>
    private void FailLeaderReads()
    {
        foreach (var read in deferredReads) Fail(read.From, read.RequestId);
        deferredReads.Clear();
        while (pendingReads.Count > 0)
        {
            var read = pendingReads.Dequeue();
            Fail(read.From, read.RequestId);
        }
        readRoundPending = false;
    }

    private void TickLeaderReads()
    {
        // Without check-quorum a cut-off leader never steps down; don't let its reads hang.
        while (pendingReads.Count > 0 && tickCount - pendingReads.Peek().StartedTick >= ReadTimeoutTicks)
        {
            var read = pendingReads.Dequeue();
            Fail(read.From, read.RequestId);
        }
        if (deferredReads.Count > 0 && tickCount - deferredReads[0].StartedTick >= ReadTimeoutTicks)
        {
            deferredReads.RemoveAll(read =>
            {
                if (tickCount - read.StartedTick < ReadTimeoutTicks) return false;
                Fail(read.From, read.RequestId);
                return true;
            });
        }
    }

    private void HandleReadIndexResponse(Message m)
    {
        for (int i = 0; i < forwardedReads.Count; i++)
        {
            if (forwardedReads[i].RequestId != m.Context) continue;
            forwardedReads.RemoveAt(i);
            readStates.Add(new ReadState(m.Context, m.Reject ? -1 : m.Index));
            return;
        }
    }

    private void TickForwardedReads()
    {
        if (forwardedReads.Count == 0) return;
        forwardedReads.RemoveAll(read =>
        {
            if (tickCount - read.StartedTick < ReadTimeoutTicks) return false;
            readStates.Add(new ReadState(read.RequestId, -1));
            return true;
        });
    }

    /// <summary>The leader we asked is gone: fail its reads now so clients can retry elsewhere.</summary>
    private void FailForwardedReads()
    {
        foreach (var read in forwardedReads) readStates.Add(new ReadState(read.RequestId, -1));
        forwardedReads.Clear();
    }
}
