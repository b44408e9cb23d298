namespace RaftServer.Consensus;

/// <summary>Leader election: Figure 2's term and vote rules, §5.2, pre-vote (thesis §9.6) and
/// check-quorum / leader stickiness (thesis §6.2, §4.2.3).</summary>
public sealed partial class RaftNode
{
    /// <summary>Context value on a Vote that a leadership transfer caused: it must not be
    /// ignored for the leader lease (thesis §3.10, §4.2.3).</summary>
    public const long TransferVoteContext = 1;

    /// <summary>This election's answers by voter: granted or refused.</summary>
    private readonly Dictionary<int, bool> votes = new();

    /// <summary>
    /// Figure 2, "all servers": a message with a higher term makes us adopt the term and follow;
    /// a message with a lower term is stale. Returns false when the message is done with.
    /// </summary>
    private bool StepTerm(Message m)
    {
        if (m.Term > term)
        {
            if (m.Type is MessageType.Vote or MessageType.PreVote)
            {
                // Thesis §4.2.3: a server that heard from a leader within the minimum election
                // timeout ignores requests to vote, so a node that was cut off cannot depose a
                // healthy leader. A transfer's election is exempt.
                bool force = m.Type == MessageType.Vote && m.Context == TransferVoteContext;
                if (InLease() && !force) return false;
            }
            if (m.Type == MessageType.PreVote) return true; // a pre-vote never changes our term
            if (m.Type == MessageType.PreVoteResponse && !m.Reject) return true; // granted for our next term
            bool fromLeader = m.Type is MessageType.Append or MessageType.Heartbeat or MessageType.Snapshot;
            BecomeFollower(m.Term, fromLeader ? m.From : SoftState.NoLeader);
            return true;
        }
        if (m.Term < term)
        {
            if (m.Type is MessageType.Append or MessageType.Heartbeat or MessageType.Snapshot)
            {
                // A stale leader (e.g. back from a partition) learns our term from this and steps
                // down; with pre-vote or check-quorum it might otherwise never hear of it, while we
                // (having a higher term from an election that did not finish) ignore it forever.
                Send(new Message { Type = MessageType.AppendResponse, From = Id, To = m.From, Term = term });
            }
            else if (m.Type == MessageType.PreVote)
            {
                Send(new Message { Type = MessageType.PreVoteResponse, From = Id, To = m.From, Term = term, Reject = true });
            }
            return false;
        }
        return true;
    }

    /// <summary>True while this follower has heard from a leader within the election timeout.</summary>
    private bool InLease() =>
        (options.CheckQuorum || options.PreVote) && leaderId != SoftState.NoLeader && electionElapsed < options.ElectionTicks;

    /// <summary>
    /// A hint from the driver that the process of node <paramref name="id"/> is gone (its
    /// transport found nothing listening on the node's port, as right after a kill or a stop on
    /// the same host). If that node is this follower's leader, the follower forgets it, so it no
    /// longer refuses votes on the leader's behalf (the lease of thesis §4.2.3), and brings its
    /// election timer forward to a few heartbeat periods, so the next election starts long
    /// before the rest of the election timeout would have passed.
    /// The surviving followers get the same hint at about the same moment; if they campaigned
    /// together they would split the vote and lose a whole election timeout. So each waits in
    /// its own slot of two heartbeat periods, by its rank among the surviving members: the lowest
    /// id pre-votes at its next tick, the next at a random point of periods 3-4, the next 5-6,
    /// ...; the first pre-vote has more than a heartbeat period to win before the next follower
    /// fires, whatever the phase of the nodes' ticks. Each survivor learns of the death on its
    /// own, some milliseconds apart, and a pre-vote that reaches a survivor still in the lease is
    /// ignored; so a pre-candidate on the hint asks again at each tick
    /// (<see cref="hintedPreVotes"/>), until it wins, hears of a leader, is refused, or an
    /// election timeout has passed, instead of waiting a whole election timeout.
    /// Only timers and the lease change: the vote rules, the log check and pre-vote are untouched,
    /// so a wrong hint costs at most an election, never safety, and a node given a wrong hint
    /// cannot depose a leader its peers still hear from (they refuse its pre-vote). Reads never
    /// rely on the lease here (read index, thesis §6.4); lease-based reads (§6.4.1) would have to
    /// stop honouring this hint. Ignored unless this node is a follower whose leader is
    /// <paramref name="id"/>.
    /// </summary>
    public void LeaderUnreachable(int id)
    {
        if (role != Role.Follower || leaderId == SoftState.NoLeader || id != leaderId) return;
        // No leader, no lease (InLease): votes and pre-votes of the next term are judged on the
        // log alone, as they would be once the election timeout had passed.
        SetLeader(SoftState.NoLeader);

        int rank = 0;
        foreach (int voter in config.VoterIds)
            if (voter != id && voter < Id) rank++;
        int slot = 2 * options.HeartbeatTicks;
        int remaining = Math.Min(rank == 0 ? 1 : 1 + rank * slot + options.Random.Next(slot), options.ElectionTicks - 1);
        hintedPreVotes = options.ElectionTicks;
        if (randomizedElectionTimeout - electionElapsed <= remaining) return; // due sooner anyway
        // Keep the timeout itself within [ElectionTicks, 2 * ElectionTicks): if the leader turns
        // out to be alive, its next heartbeat resets electionElapsed and this node again waits at
        // least a whole election timeout before it campaigns.
        electionElapsed = Math.Max(electionElapsed, options.ElectionTicks);
        randomizedElectionTimeout = electionElapsed + remaining;
    }

    /// <summary>
    /// Pre-vote rounds left that a pre-candidate repeats at each tick after the hint
    /// (<see cref="LeaderUnreachable"/>): a survivor that had not heard of the death yet ignored
    /// the last one. Cleared when this node hears of a leader, becomes a follower or a candidate.
    /// Pre-votes change no term or vote, so asking again costs only the messages.
    /// </summary>
    private int hintedPreVotes;

    private void TickElection()
    {
        TickForwardedReads();
        electionElapsed++;
        if (role == Role.PreCandidate && hintedPreVotes > 0 && CanCampaign)
        {
            hintedPreVotes--;
            Campaign(preVote: true, transfer: false);
            return;
        }
        // Only a voter campaigns: a learner, a removed node and one still learning the
        // configuration just follow.
        if (electionElapsed >= randomizedElectionTimeout && CanCampaign)
        {
            electionElapsed = 0;
            Campaign(options.PreVote, transfer: false);
        }
    }

    private void TickLeader()
    {
        heartbeatElapsed++;
        electionElapsed++;
        if (ticksLeading < int.MaxValue) ticksLeading++;
        if (departing.Count > 0) TickDeparting();
        TickLeaderReads();
        TickSnapshots();

        if (leadTransferee != SoftState.NoLeader && ++transferElapsed >= options.ElectionTicks)
            AbortTransfer(); // thesis §3.10: give up after an election timeout

        if (electionElapsed >= options.ElectionTicks)
        {
            electionElapsed = 0;
            if (options.CheckQuorum)
            {
                // Thesis §6.2: a leader that has not heard from a majority for an election
                // timeout steps down, so clients stop waiting on it and reads stay safe.
                if (!QuorumRecentlyActive())
                {
                    BecomeFollower(term, SoftState.NoLeader);
                    return;
                }
                foreach (var pr in progress) pr.StartActivityRound(pr == self);
            }
        }

        if (heartbeatElapsed >= options.HeartbeatTicks)
        {
            heartbeatElapsed = 0;
            BroadcastHeartbeat();
        }
    }

    private bool QuorumRecentlyActive()
    {
        int active = 0;
        for (int i = 0; i < progress.Length; i++)
            if (isVoter[i] && (progress[i] == self || progress[i].RecentlyActive)) active++;
        return active >= Quorum;
    }

    /// <summary>
    /// Start an election (§5.2), or with pre-vote first a dry run at term+1 that changes nothing
    /// unless a majority would vote for us (thesis §9.6), so a node that was partitioned away
    /// cannot force the cluster into a higher term when it returns.
    /// </summary>
    private void Campaign(bool preVote, bool transfer)
    {
        long voteTerm;
        MessageType type;
        if (preVote)
        {
            BecomePreCandidate();
            voteTerm = term + 1;
            type = MessageType.PreVote;
        }
        else
        {
            BecomeCandidate();
            voteTerm = term;
            type = MessageType.Vote;
        }

        if (RecordVote(Id, granted: true) == VoteResult.Won)
        {
            // A single-node cluster wins at once.
            if (preVote) Campaign(false, transfer);
            else BecomeLeader();
            return;
        }

        foreach (int voter in config.VoterIds)
        {
            if (voter == Id) continue;
            Send(new Message
            {
                Type = type, From = Id, To = voter, Term = voteTerm,
                LogTerm = log.LastTerm, Index = log.LastIndex,
                Context = transfer ? TransferVoteContext : 0,
            });
        }
    }

    /// <summary>
    /// Figure 2, RequestVote receiver: grant if we have not voted for another candidate in this
    /// term (re-granting to the same one, whose request may have been duplicated) and the
    /// candidate's log is at least as up-to-date as ours (§5.4.1). A pre-vote is granted on the
    /// same log rule to a future term, without recording anything.
    /// </summary>
    private void HandleVoteRequest(Message m)
    {
        bool preVote = m.Type == MessageType.PreVote;
        bool canVote = votedFor == m.From
            || (votedFor == HardState.NoVote && leaderId == SoftState.NoLeader)
            || (preVote && m.Term > term);
        bool grant = canVote && log.IsUpToDate(m.Index, m.LogTerm);
        var responseType = preVote ? MessageType.PreVoteResponse : MessageType.VoteResponse;

        if (grant)
        {
            // A granted pre-vote answers in the term it was asked for, so the pre-candidate can
            // count it; a real vote is recorded (durably, before the response is sent).
            Send(new Message { Type = responseType, From = Id, To = m.From, Term = m.Term });
            if (!preVote)
            {
                electionElapsed = 0;
                if (votedFor != m.From) voteGranted = new VoteGrant(m.From, term);
                votedFor = m.From;
            }
        }
        else
        {
            Send(new Message { Type = responseType, From = Id, To = m.From, Term = term, Reject = true });
        }
    }

    private void HandleVoteResponse(Message m)
    {
        if (!config.IsVoter(m.From)) return;
        switch (RecordVote(m.From, !m.Reject))
        {
            case VoteResult.Won:
                if (role == Role.PreCandidate) Campaign(false, transfer: false);
                else BecomeLeader();
                break;
            case VoteResult.Lost:
                BecomeFollower(term, SoftState.NoLeader);
                break;
        }
    }

    private enum VoteResult { Pending, Won, Lost }

    /// <summary>Counts a voter's answer (once per election); answers of non-voters count for nothing.</summary>
    private VoteResult RecordVote(int id, bool granted)
    {
        if (!config.IsVoter(id)) return VoteResult.Pending;
        votes.TryAdd(id, granted);
        int yes = 0, no = 0;
        foreach (var answer in votes.Values)
            if (answer) yes++; else no++;
        if (yes >= Quorum) return VoteResult.Won;
        // Lost once the voters who have not answered could no longer make a majority.
        if (no > config.VoterIds.Length - Quorum) return VoteResult.Lost;
        return VoteResult.Pending;
    }

    private void ResetVotes() => votes.Clear();

    private void BecomeFollower(long newTerm, int leader)
    {
        bool wasLeader = role == Role.Leader;
        if (newTerm != term)
        {
            term = newTerm;
            votedFor = HardState.NoVote;
        }
        // Figure 2 restarts the election timer only on hearing from the leader, granting a vote or
        // starting an election. Adopting a higher term from a candidate whose log is behind must
        // not restart it, or stale candidates could keep the up-to-date nodes from ever timing
        // out. A leader stepping down starts a fresh follower timer.
        if (role == Role.Leader) ResetTimers();
        role = Role.Follower;
        hintedPreVotes = 0;
        leadTransferee = SoftState.NoLeader;
        if (wasLeader) FailLeaderReads();
        SetLeader(leader);
    }

    private void SetLeader(int leader)
    {
        if (leaderId != leader) FailForwardedReads();
        leaderId = leader;
        if (leader != SoftState.NoLeader) hintedPreVotes = 0;
    }

    private void BecomePreCandidate()
    {
        // Term and vote unchanged: a pre-vote is a question, not an election (thesis §9.6).
        role = Role.PreCandidate;
        SetLeader(SoftState.NoLeader);
        ResetTimers();
        ResetVotes();
    }

    private void BecomeCandidate()
    {
        // Figure 2, candidates: increment currentTerm, vote for self, reset the election timer.
        term++;
        votedFor = Id;
        role = Role.Candidate;
        hintedPreVotes = 0;
        SetLeader(SoftState.NoLeader);
        ResetTimers();
        ResetVotes();
    }

    private void BecomeLeader()
    {
        role = Role.Leader;
        SetLeader(Id);
        ResetTimers();
        leadTransferee = SoftState.NoLeader;
        long next = log.LastIndex + 1;
        foreach (var pr in progress) pr.Reset(next);
        self.RecentlyActive = true;
        committedInTerm = false;
        ticksLeading = 0;

        // §5.4.2 / §8: a leader may only commit entries of its own term by counting replicas, so
        // it appends a no-op at once; that commits every earlier entry too, and lets read-index
        // learn the latest commit index (thesis §6.4).
        var noOp = Entry.NoOp(log.LastIndex + 1, term);
        log.Append(noOp);
        self.MaybeUpdate(noOp.Index);
        if (options.PersistBootstrapConfiguration && log.LatestConfig is null)
        {
            // The first leader of a new cluster records its configuration in the log, so no node
            // depends on config.conf once it has this entry (a snapshot then carries it too).
            var entry = new Entry(log.LastIndex + 1, term, EntryKind.Configuration, bootstrap.Encode());
            log.Append(entry);
            self.MaybeUpdate(entry.Index);
            SyncConfiguration();
        }
        MaybeCommit();
        broadcastPending = true;
    }
}
