using System.Net;
using Microsoft.Extensions.Logging;
using RaftServer.Cluster;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>
/// The hello of a peer connection (<see cref="PeerWire"/>): what this node says about itself, and
/// the checks of what a peer says, on both sides. A peer of another cluster (both ids known and
/// different) is refused with one line naming both ids, at most once a minute per peer and id
/// (<see cref="LogLimiter"/>). This is a guard against mistakes (a node of another cluster started
/// with the same ids and addresses), not authentication: without TLS anyone who can reach the port
/// can send any hello (docs/security.md, "Cluster identity"). With peer TLS (<see cref="Tls"/>) the
/// hello must name the node of the peer's certificate, which makes it a checked claim.
/// </summary>
public sealed class PeerHandshake(int self, ClusterIdentity identity, Func<int, bool> isRemoved, ILogger logger, PeerTls? tls = null)
{
    private readonly LogLimiter _limiter = new(TimeSpan.FromMinutes(1));

    public int Self => self;
    public ClusterIdentity Identity => identity;
    /// <summary>Peer TLS, when on: every connection to and from peers goes through it.</summary>
    public PeerTls? Tls => tls;

    /// <summary>This node's hello frame (its cluster id as known now).</summary>
    public byte[] LocalHello() => PeerWire.Hello(identity.Id, self);

    /// <summary>Accepting side: this node's answer to <paramref name="hello"/>, sent whether or not the
    /// connection is admitted, so a refused peer learns which cluster this is and whether its
    /// configuration removed that peer (a node that was down while it was removed learns it so).</summary>
    public byte[] AnswerTo(P.PeerHello hello) => PeerWire.Hello(identity.Id, self, removed: hello.NodeId != self && isRemoved(hello.NodeId));

    /// <summary>Accepting side: whether the connection of <paramref name="hello"/> may go to the node loop
    /// (false: refused, and said so in the log).</summary>
    public bool Admit(P.PeerHello hello, EndPoint? remote)
    {
        if (!identity.Accepts(hello.ClusterId))
        {
            Refuse($"cluster {Source(remote)}",
                "Refused a peer connection from node {Peer} at {Remote}: it belongs to cluster {Theirs}, this node to cluster {Ours}{Held}",
                hello.NodeId, remote?.ToString() ?? "?", ClusterIdentity.Format(hello.ClusterId), ClusterIdentity.Format(identity.Id));
            return false;
        }
        if (hello.NodeId == self)
        {
            Refuse($"self {Source(remote)}", "Refused a peer connection from {Remote}: it says it is node {Peer}, this node's own id{Held}",
                remote?.ToString() ?? "?", hello.NodeId);
            return false;
        }
        if (isRemoved(hello.NodeId))
        {
            Refuse($"removed {Source(remote)}", "Refused a peer connection from node {Peer} at {Remote}: it was removed from the cluster{Held}",
                hello.NodeId, remote?.ToString() ?? "?");
            return false;
        }
        return true;
    }

    /// <summary>
    /// Accepting side, for an HTTP/2 connection over peer TLS (forwarded calls, snapshot uploads;
    /// no hello): whether the node its certificate names may use it (false: this node's own id or a
    /// removed member's, refused and said so).
    /// </summary>
    public bool AdmitCertified(int nodeId, EndPoint? remote)
    {
        if (nodeId == self || isRemoved(nodeId))
        {
            Refuse($"certified {nodeId} {Source(remote)}",
                "Refused a peer TLS connection from {Remote}: its certificate names node {Peer}, {Why}{Held}",
                remote?.ToString() ?? "?", nodeId, nodeId == self ? "this node's own id" : "which was removed from the cluster");
            return false;
        }
        return true;
    }

    /// <summary>Connecting side: whether the peer's answer lets the connection go on (false: said so in the log).</summary>
    public bool AcceptAnswer(P.PeerHello answer, NodeAddress peer)
    {
        if (!identity.Accepts(answer.ClusterId))
        {
            Refuse($"to {peer.Id} cluster",
                "Refused the connection to node {Peer} at {Address}: it belongs to cluster {Theirs}, this node to cluster {Ours}{Held}",
                peer.Id, peer.Authority, ClusterIdentity.Format(answer.ClusterId), ClusterIdentity.Format(identity.Id));
            return false;
        }
        if (answer.NodeId != peer.Id)
        {
            Refuse($"to {peer.Id} as {answer.NodeId}",
                "Refused the connection to node {Peer} at {Address}: the node there is node {Other}{Held}",
                peer.Id, peer.Authority, answer.NodeId);
            return false;
        }
        if (answer.Removed)
        {
            // Said at error level: a node that was down while it was removed hears it only this way.
            Say(LogLevel.Error, $"to {peer.Id} removed",
                "Node {Peer} at {Address} refused this node (node {Self}): its configuration removed this node from the cluster, " +
                "so this node takes no part in it any more. Stop it; to bring the machine back, remove its data directory, " +
                "add it under a new id (ids are not reused; Add-RaftNode) and start it with --join{Held}",
                peer.Id, peer.Authority, self);
            return false;
        }
        return true;
    }

    /// <summary>
    /// The key a refusal is rate-limited on: the sender's address without its port, never a value
    /// the sender writes into its hello (a new cluster or node id per connection would otherwise
    /// get every refusal its own line, and flood the log).
    /// </summary>
    private static string Source(EndPoint? remote) => remote is IPEndPoint ip ? ip.Address.ToString() : remote?.ToString() ?? "?";

    /// <summary>A connection closed before it said who it is, for a reason worth a (rate-limited) line.</summary>
    public void Warn(string key, string template, params object?[] args) => Refuse(key, template + "{Held}", args);

    private void Refuse(string key, string template, params object?[] args) => Say(LogLevel.Warning, key, template, args);

    /// <summary>One line per <paramref name="key"/> a minute; the next says how many were held back.</summary>
    private void Say(LogLevel level, string key, string template, params object?[] args)
    {
        if (!_limiter.Allow(key, out var held)) return;
        var heldNote = held > 0 ? $" ({held} more like it in the last minute)" : "";
#pragma warning disable CA2254 // the templates are constants of this class
        logger.Log(level, template, [.. args, heldNote]);
#pragma warning restore CA2254
    }
}
