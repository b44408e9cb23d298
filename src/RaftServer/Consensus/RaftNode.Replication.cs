namespace RaftServer.Consensus;

/// <summary>Log replication (§5.3) and commitment (§5.4.2), with the conflict hint of §5.3's
/// closing paragraphs, bounded pipelining and batching of entries per message.</summary>
public sealed partial class RaftNode
{
    /// <summary>Entries were appended (or leadership just began): replicate at the end of the turn,
    /// so all proposals of one turn share one Append per peer.</summary>
    private bool broadcastPending;
    /// <summary>Whether an entry of the current term is committed (thesis §6.4: reads wait for it).</summary>
    private bool committedInTerm;
    /// <summary>Ticks since this node became leader (saturating): a voter it has not heard from in
    /// its first election timeout may simply not have answered yet.</summary>
    private int ticksLeading;

    /// <summary>Append a command if leader.</summary>
    public ProposeResult Propose(byte[] command) => Propose(command, EntryKind.Command);

    /// <summary>Append an entry of <paramref name="kind"/> if leader.</summary>
    public ProposeResult Propose(byte[] command, EntryKind kind)
    {
        ArgumentNullException.ThrowIfNull(command);
        if (kind == EntryKind.Configuration) throw new ArgumentException("a configuration goes through ProposeConfiguration", nameof(kind));
        if (role != Role.Leader) return new ProposeResult(ProposeOutcome.NotLeader, 0, 0, leaderId);
        // Thesis §3.10: while handing leadership over, stop taking writes so the target catches up.
        if (leadTransferee != SoftState.NoLeader) return new ProposeResult(ProposeOutcome.TransferInProgress, 0, 0, leadTransferee);

        var entry = new Entry(log.LastIndex + 1, term, kind, command);
        log.Append(entry);
        self.MaybeUpdate(entry.Index);
        if (Quorum == 1) MaybeCommit(); // a single-node cluster commits at once
        broadcastPending = true;
        return new ProposeResult(ProposeOutcome.Accepted, entry.Index, entry.Term, Id);
    }

    // ---- follower side -----------------------------------------------------------------------

    /// <summary>Figure 2, AppendEntries receiver.</summary>
    private void HandleAppend(Message m)
    {
        if (m.Index < log.Committed)
        {
            // Everything up to our commit index matches any leader's log (Leader Completeness), so
            // tell the leader where we are instead of checking an index we may have compacted.
            Send(new Message { Type = MessageType.AppendResponse, From = Id, To = m.From, Term = term, Index = log.Committed });
            return;
        }

        if (log.Matches(m.Index, m.LogTerm))
        {
            // A configuration entry that cannot be read refuses the whole message before the log
            // changes (throws: the driver drops the message).
            foreach (var e in m.Entries)
                if (e.Kind == EntryKind.Configuration) RaftLog.DecodeConfig(e);
            // Rules 3-5: append what is new, truncate a conflicting suffix, and commit up to
            // min(leaderCommit, index of last new entry).
            long lastNew = log.AppendAfter(m.Index, m.Entries);
            log.CommitTo(Math.Min(m.Commit, lastNew));
            SyncConfiguration();
            Send(new Message { Type = MessageType.AppendResponse, From = Id, To = m.From, Term = term, Index = lastNew });
            return;
        }

        // Rule 2: the consistency check failed. Hint the leader past the whole conflicting term
        // (§5.3: "the follower can include the term of the conflicting entry and the first index
        // it stores for that term"), or to our end when our log is too short.
        long hintTerm, rejectHint;
        if (m.Index > log.LastIndex)
        {
            hintTerm = 0;
            rejectHint = log.LastIndex + 1;
        }
        else
        {
            hintTerm = log.TermAt(m.Index);
            // Never below our commit index + 1: everything committed matches the leader's log, so
            // the leader need not probe (or, after compaction, send a snapshot) below it.
            rejectHint = Math.Max(log.FirstIndexOfTermAt(m.Index), log.Committed + 1);
        }
        Send(new Message
        {
            Type = MessageType.AppendResponse, From = Id, To = m.From, Term = term,
            Index = m.Index, Reject = true, RejectHint = rejectHint, HintTerm = hintTerm,
        });
    }

    private void HandleHeartbeat(Message m)
    {
        // The leader sends min(match, commit), so this never commits past what we share with it.
        log.CommitTo(Math.Min(m.Commit, log.LastIndex));
        SyncConfiguration();
        // A commit past our last entry means the leader counts entries we no longer have (our
        // storage was wiped or restored from an old copy): say where our log ends, or an idle
        // leader would never send them again.
        var lost = m.Commit > log.LastIndex;
        Send(new Message
        {
            Type = MessageType.HeartbeatResponse, From = Id, To = m.From, Term = term, Context = m.Context,
            Reject = lost, RejectHint = lost ? log.LastIndex + 1 : 0,
        });
    }

    // ---- leader side -------------------------------------------------------------------------

    private void HandleAppendResponse(Progress pr, Message m)
    {
        pr.RecentlyActive = true;
        if (m.Reject)
        {
            if (pr.MaybeDecreaseTo(m.Index, NextFromConflictHint(m), logTooShort: m.HintTerm == 0))
                SendAppend(pr, sendIfEmpty: false);
            return;
        }

        if (!pr.MaybeUpdate(m.Index)) return;
        switch (pr.State)
        {
            case ReplicationState.Probe: pr.BecomeReplicate(); break;
            case ReplicationState.Snapshot: MaybeEndSnapshot(pr); break;
            default: pr.Inflights.FreeUpTo(m.Index); break;
        }

        MaybeCommit();
        if (pr.Match >= log.Committed) pr.CaughtUpThisRound = true;
        // Refill the pipe: as many Appends as the in-flight bound allows.
        while (SendAppend(pr, sendIfEmpty: false)) { }

        if (pr.Id == leadTransferee && pr.Match == log.LastIndex) SendTimeoutNow(pr.Id);
    }

    /// <summary>
    /// Where to probe next after a rejection: past the follower's whole conflicting term when we
    /// lack that term, else just after our last entry of that term; the follower's end when its
    /// log was too short.
    /// </summary>
    private long NextFromConflictHint(Message m)
    {
        if (m.HintTerm == 0) return m.RejectHint;
        long index = log.LastIndexWithTermAtMost(m.Index, m.HintTerm);
        return log.TermAt(index) == m.HintTerm ? index + 1 : m.RejectHint;
    }

    private void HandleHeartbeatResponse(Progress pr, Message m)
    {
        pr.RecentlyActive = true;
        pr.ProbeSent = false;
        // The peer is alive: an Append that was lost must not keep the pipe blocked.
        if (pr.State == ReplicationState.Replicate && pr.Inflights.Full) pr.Inflights.FreeFirst();
        // The follower's log ends before its Match: it lost its storage (see HandleHeartbeat).
        if (m.Reject) pr.MaybeDecreaseTo(pr.Match, m.RejectHint, logTooShort: true);
        else if (pr.Match >= log.Committed) pr.CaughtUpThisRound = true;
        // Sending even an empty Append here lets a follower that missed the last Appends reject
        // it and so start the catch-up (a lost final Append is otherwise never noticed).
        if (pr.Match < log.LastIndex) SendAppend(pr, sendIfEmpty: true);
        HandleReadAck(pr, m.Context);
    }

    /// <summary>
    /// Sends the entries from the peer's Next, as many as MaxAppendBytes allows (at least one).
    /// In Probe state one Append at a time; in Replicate state optimistically, up to
    /// MaxInflightAppends unacknowledged; the snapshot instead when Next - 1 is compacted away.
    /// Returns whether a message was sent.
    /// </summary>
    private bool SendAppend(Progress pr, bool sendIfEmpty)
    {
        if (pr.IsPaused) return false;
        long prevIndex = pr.Next - 1;
        long prevTerm = log.TermAt(prevIndex);
        // Compacted away: only a snapshot can help this peer.
        if (prevTerm < 0) return prevIndex < log.SnapshotIndex && SendSnapshot(pr);

        var entries = pr.Next <= log.LastIndex ? log.Slice(pr.Next, options.MaxAppendBytes) : [];
        if (entries.Length == 0 && !sendIfEmpty) return false;

        long commit = log.Committed;
        Send(new Message
        {
            Type = MessageType.Append, From = Id, To = pr.Id, Term = term,
            Index = prevIndex, LogTerm = prevTerm, Entries = entries, Commit = commit,
        });
        long lastSent = prevIndex + entries.Length;
        pr.CommitSent = Math.Max(pr.CommitSent, Math.Min(commit, lastSent));

        if (pr.State == ReplicationState.Replicate)
        {
            if (entries.Length > 0)
            {
                pr.Next = lastSent + 1;
                pr.Inflights.Add(lastSent);
            }
        }
        else
        {
            pr.ProbeSent = true;
        }
        return true;
    }

    private void BroadcastHeartbeat()
    {
        // Every heartbeat round has a context of its own, so an answer names the heartbeat it
        // answers (the host times round trips by it). Being a read round too is safe: its
        // heartbeats leave after every read accepted so far, which it may therefore confirm.
        readRound++;
        self.ReadRoundAcked = readRound;
        foreach (var pr in progress)
        {
            if (pr == self) continue;
            SendHeartbeat(pr, readRound);
        }
    }

    private void SendHeartbeat(Progress pr, long context)
    {
        // Only what the peer is known to hold may be committed by a heartbeat (it carries no
        // consistency check).
        long commit = Math.Min(pr.Match, log.Committed);
        Send(new Message { Type = MessageType.Heartbeat, From = Id, To = pr.Id, Term = term, Commit = commit, Context = context });
        pr.CommitSent = Math.Max(pr.CommitSent, commit);
    }

    /// <summary>
    /// Work the leader defers to the end of a loop turn so that it is batched: one Append per peer
    /// for all the turn's proposals, one commit notice per peer for all the turn's
    /// acknowledgements, one heartbeat round for all the turn's reads.
    /// </summary>
    private void FlushLeaderWork()
    {
        if (role != Role.Leader) return;
        if (handOverPending)
        {
            HandOver();
            return;
        }
        if (broadcastPending)
        {
            broadcastPending = false;
            foreach (var pr in progress)
            {
                if (pr == self) continue;
                while (SendAppend(pr, sendIfEmpty: false)) { }
            }
        }

        // Tell followers about a new commit index now rather than at the next Append or heartbeat,
        // so they apply (and serve reads) sooner. An empty Append at the peer's match index always
        // passes the consistency check, whatever else is still in flight.
        foreach (var pr in progress)
        {
            if (!CommitNoticeDue(pr, out long canCommit, out long matchTerm)) continue;
            Send(new Message
            {
                Type = MessageType.Append, From = Id, To = pr.Id, Term = term,
                Index = pr.Match, LogTerm = matchTerm, Commit = canCommit,
            });
            pr.CommitSent = canCommit;
        }

        StartReadRoundIfNeeded();
    }

    /// <summary>Whether <paramref name="pr"/> can be told a higher commit index than it was sent.</summary>
    private bool CommitNoticeDue(Progress pr, out long canCommit, out long matchTerm)
    {
        canCommit = Math.Min(log.Committed, pr.Match);
        matchTerm = -1;
        if (pr == self || canCommit <= pr.CommitSent) return false;
        matchTerm = log.TermAt(pr.Match);
        return matchTerm >= 0;
    }

    /// <summary>Whether <see cref="FlushLeaderWork"/> has something to do (pure).</summary>
    private bool HasLeaderWork
    {
        get
        {
            if (role != Role.Leader) return false;
            if (broadcastPending || readRoundPending || handOverPending) return true;
            foreach (var pr in progress)
                if (CommitNoticeDue(pr, out _, out _)) return true;
            return false;
        }
    }

    /// <summary>
    /// §5.3/§5.4.2: the highest index a majority holds becomes committed, but only if its entry is
    /// of the current term (Figure 8: counting replicas of an older term's entry is unsafe).
    /// </summary>
    private bool MaybeCommit()
    {
        int voters = 0;
        for (int i = 0; i < progress.Length; i++)
            if (isVoter[i]) matchScratch[voters++] = progress[i].Match;
        if (voters == 0) return false;
        Array.Sort(matchScratch, 0, voters);
        long candidate = matchScratch[voters - Quorum];
        if (candidate <= log.Committed || log.TermAt(candidate) != term) return false;
        log.CommitTo(candidate);
        SyncConfiguration();
        if (!committedInTerm)
        {
            committedInTerm = true;
            ReleaseDeferredReads();
        }
        return true;
    }
}
