using RaftServer.Cluster;
using RaftServer.Consensus;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>What of a batch a peer sent (<see cref="PeerFrameReader"/>) the node loop takes:
/// only from a member, or from a node the configuration does not list yet that says where it
/// listens (it becomes a <see cref="Membership.Remotes">remote</see>, so that this node can answer
/// it), or from a removed member the leader still sends to (its answers tell the leader it has the
/// entry that removed it); never from a node the configuration removed otherwise; only messages it
/// addressed from itself to this node.</summary>
public static class PeerInbox
{
    /// <summary>The batch's messages for this node, or null when there are none.</summary>
    public static List<Message>? ToMessages(Membership membership, P.MessageBatch batch)
    {
        if (batch.From == membership.Self) return null;
        if (!membership.Contains(batch.From) && !membership.IsDeparting(batch.From))
        {
            if (batch.FromHost.Length == 0 || batch.FromHost.Length > 255) return null;
            if (!membership.LearnRemote(new NodeAddress(batch.From, batch.FromHost, batch.FromPort))) return null;
        }
        var messages = new List<Message>(batch.Messages.Count);
        foreach (var p in batch.Messages)
        {
            if (p.To != membership.Self || p.From != batch.From) continue;
            if (MessageMapper.FromProto(p) is { } m) messages.Add(m);
        }
        return messages.Count > 0 ? messages : null;
    }
}
