using RaftServer.Consensus;
using RaftServer.Hosting;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>Hands a batch a peer sent (<see cref="PeerListener"/>) to the node loop as one event:
/// only from a member, only messages it addressed from itself to this node.</summary>
public static class PeerInbox
{
    public static void Deliver(NodeLoop loop, P.MessageBatch batch)
    {
        if (loop.Config.Find(batch.From) is null) return;
        var messages = new List<Message>(batch.Messages.Count);
        foreach (var p in batch.Messages)
        {
            if (p.To != loop.Id || p.From != batch.From) continue;
            if (MessageMapper.FromProto(p) is { } m) messages.Add(m);
        }
        if (messages.Count > 0) loop.Post(messages);
    }
}
