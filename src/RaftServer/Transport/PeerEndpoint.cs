using System.Net.Sockets;
using RaftServer.Consensus;

namespace RaftServer.Transport;

/// <summary>
/// What the inbound side of the peer transport (the connection sorter, the snapshot service)
/// needs from the node, and nothing more: the node loop implements it.
/// </summary>
public interface IPeerEndpoint
{
    /// <summary>While true, peer connections and snapshot uploads are refused.</summary>
    bool Suspended { get; }

    /// <summary>Any thread: a peer's message connection, its preface and hello read, for the loop to
    /// read; <paramref name="peerId"/> is the node its hello named.</summary>
    void AcceptConnection(Socket socket, int peerId);

    /// <summary>Any thread: messages for the core that did not come on a peer connection (a received snapshot).</summary>
    void Deliver(List<Message> messages);
}
