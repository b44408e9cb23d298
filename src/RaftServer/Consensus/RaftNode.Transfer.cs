namespace RaftServer.Consensus;

/// <summary>Leadership transfer (thesis §3.10): bring the target's log up to date, then tell it
/// to start an election at once (TimeoutNow); give up after an election timeout.</summary>
public sealed partial class RaftNode
{
    private int leadTransferee = SoftState.NoLeader;
    private int transferElapsed;

    /// <summary>Hand leadership to <paramref name="target"/> or, when null, the most up-to-date
    /// peer. False when this node is not leader or the target is not another member; true when
    /// the transfer started (or already runs to that target). Proposals get TransferInProgress
    /// until the transfer ends; it is abandoned after an election timeout.</summary>
    public bool TransferLeadership(int? target)
    {
        if (role != Role.Leader) return false;
        int to = target ?? MostUpToDatePeer();
        // Only a voter can be elected.
        if (to == Id || to == SoftState.NoLeader || !config.IsVoter(to)) return false;
        var pr = ProgressOf(to);
        if (pr is null) return false;
        if (leadTransferee == to) return true;

        leadTransferee = to;
        transferElapsed = 0;
        if (pr.Match == log.LastIndex) SendTimeoutNow(to);
        else SendAppend(pr, sendIfEmpty: false);
        return true;
    }

    private int MostUpToDatePeer()
    {
        int best = SoftState.NoLeader;
        long bestMatch = -1;
        for (int i = 0; i < progress.Length; i++)
        {
            var pr = progress[i];
            if (pr == self || !isVoter[i]) continue;
            if (pr.Match > bestMatch)
            {
                bestMatch = pr.Match;
                best = pr.Id;
            }
        }
        return best;
    }

    private void SendTimeoutNow(int to) =>
        Send(new Message { Type = MessageType.TimeoutNow, From = Id, To = to, Term = term });

    private void AbortTransfer()
    {
        leadTransferee = SoftState.NoLeader;
        transferElapsed = 0;
    }

    private void HandleTimeoutNow(Message m)
    {
        if (!CanCampaign) return;
        // Skip pre-vote: the leader asked for this election, and the Votes carry a flag so that
        // peers still in the leader's lease do not ignore them.
        Campaign(preVote: false, transfer: true);
    }
}
