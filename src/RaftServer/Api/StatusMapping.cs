using RaftServer.Cluster;
using RaftServer.Hosting;
using P = RaftPS.Protocol;

namespace RaftServer.Api;

/// <summary>The loop's <see cref="NodeStatus"/> and <see cref="Member"/>s on the wire.</summary>
public static class StatusMapping
{
    public static P.NodeInfo ToInfo(Member m) => new() { Id = m.Id, Address = m.Address.Host, Port = m.Address.Port };

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
        };
        if (s.Leader is { } leader) reply.Leader = ToInfo(leader);
        foreach (var m in s.Members) reply.Members.Add(ToInfo(m));
        foreach (var p in s.Peers)
            reply.Peers.Add(new P.PeerProgress { Id = p.Id, MatchIndex = p.MatchIndex, NextIndex = p.NextIndex, Reachable = p.Reachable });
        return reply;
    }
}
