using RaftServer.Consensus;

namespace RaftServer.Hosting;

public sealed partial class RaftDriver
{
    /// <summary>The storage quota checked before the leader proposes a write; null for none.</summary>
    public StorageQuota? Quota { get; set; }

    /// <summary>
    /// On the leader, refuses (NOSPACE) a write that adds data while the quota is used up
    /// (<see cref="StorageQuota"/>); a follower forwards its writes, so the leader decides.
    /// </summary>
    private bool RefusedForQuota(PendingWrite w)
    {
        if (Quota is not { } quota || _node.Role != Role.Leader) return false;
        if (quota.Refuse(w.Data, _kv.LiveBytes) is not { } reason) return false;
        w.TrySetResult(new WriteOutcome(OutcomeCode.NoSpace, default, SoftState.NoLeader, reason));
        return true;
    }

    /// <summary>Whether the NOSPACE alarm is on (cleared here once deletes brought the live data down).</summary>
    private bool NoSpaceAlarm()
    {
        if (Quota is not { } quota) return false;
        quota.Update(_kv.LiveBytes);
        return quota.Alarm;
    }
}
