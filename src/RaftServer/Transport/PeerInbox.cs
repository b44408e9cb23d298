using RaftServer.Consensus;
using RaftServer.Hosting;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>What of a batch a peer sent (<see cref="PeerFrameReader"/>) the node loop takes:
/// only from a member, only messages it addressed from itself to this node.</summary>
public static class PeerInbox
{
    /// <summary>The batch's messages for node <paramref name="self"/>, or null when there are none.</summary>
    public static List<Message>? ToMessages(ClusterConfig config, int self, P.MessageBatch batch)
    {
        if (config.Find(batch.From) is null) return null;
        var messages = new List<Message>(batch.Messages.Count);
        foreach (var p in batch.Messages)
        {
            if (p.To != self || p.From != batch.From) continue;
            if (MessageMapper.FromProto(p) is { } m) messages.Add(m);
        }
        return messages.Count > 0 ? messages : null;
    }
}
