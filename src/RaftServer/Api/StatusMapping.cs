using RaftServer.Cluster;
using RaftServer.Hosting;
using P = RaftPS.Protocol;

namespace RaftServer.Api;

/// <summary>The loop's <see cref="NodeStatus"/> and <see cref="Member"/>s on the wire.</summary>
public static class StatusMapping
{
    public static P.NodeInfo ToInfo(Member m) =>
        new() { Id = m.Id, Address = m.Address.Host, Port = m.Address.Port, Role = m.Role == Consensus.MemberRole.Learner ? P.MemberRole.Learner : P.MemberRole.Voter };

    public static P.StatusReply ToReply(NodeStatus s)
    {
        var reply = new P.StatusReply
        {
            Id = s.Id,
            Role = (P.Role)(int)s.Role,
            Term = s.Term,
            CommitIndex = s.CommitIndex,
            AppliedIndex = s.AppliedIndex,
            FirstIndex = s.FirstIndex,
            LastIndex = s.LastIndex,
            SnapshotIndex = s.SnapshotIndex,
            SnapshotTerm = s.SnapshotTerm,
            LogBytes = s.LogBytes,
            ConfigurationIndex = s.ConfigurationIndex,
            ConfigurationCommitted = s.ConfigurationCommitted,
            LiveBytes = s.LiveBytes,
            QuotaBytes = s.QuotaBytes,
            NospaceAlarm = s.NoSpaceAlarm,
        };
        if (s.Leader is { } leader) reply.Leader = ToInfo(leader);
        foreach (var m in s.Members) reply.Members.Add(ToInfo(m));
        foreach (var p in s.Peers)
            reply.Peers.Add(new P.PeerProgress { Id = p.Id, MatchIndex = p.MatchIndex, NextIndex = p.NextIndex, Reachable = p.Reachable });
        return reply;
    }

    /// <summary>Adds this node's load and health (<see cref="Observability.NodeMetrics"/>) to a Status reply.</summary>
    public static P.StatusReply WithLoad(P.StatusReply reply, Observability.NodeMetrics metrics)
    {
        reply.ReadsTotal = metrics.ReadsTotal;
        reply.WritesTotal = metrics.WritesTotal;
        reply.FsyncP99Seconds = metrics.RecentFsyncs.Percentile(0.99);
        reply.LeaderContactMs = metrics.MsSinceLeaderContact;
        return reply;
    }

    /// <summary>The leader's view of its members: every member with the leader's progress for it.</summary>
    public static P.ListMembersReply ToMembers(NodeStatus s)
    {
        var reply = new P.ListMembersReply
        {
            LeaderId = s.Leader?.Id ?? -1,
            Term = s.Term,
            CommitIndex = s.CommitIndex,
            ConfigurationIndex = s.ConfigurationIndex,
            ConfigurationCommitted = s.ConfigurationCommitted,
        };
        foreach (var m in s.Members)
        {
            var member = new P.Member { Node = ToInfo(m), IsLeader = m.Id == s.Leader?.Id, MatchIndex = -1 };
            if (m.Id == s.Id)
            {
                member.MatchIndex = s.LastIndex;
                member.Reachable = true;
                member.CaughtUp = true;
            }
            else if (s.Peers.FirstOrDefault(p => p.Id == m.Id) is { } peer)
            {
                member.MatchIndex = peer.MatchIndex;
                member.Reachable = peer.Reachable;
                member.CaughtUp = peer.CaughtUp;
            }
            reply.Members.Add(member);
        }
        return reply;
    }
}
