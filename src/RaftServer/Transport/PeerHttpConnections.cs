namespace RaftServer.Transport;

/// <summary>
/// The bound on peers' HTTP/2 connections over peer TLS (forwarded calls, snapshot uploads;
/// docs/security.md, "Connections and their bounds"), apart from the clients' --max-client-connections:
/// peers neither take clients' places nor can be kept out by clients. At most <see cref="PerNode"/>
/// per node a certificate names (a real peer keeps a few: its forwarding channel, which opens another
/// connection for each --max-streams-per-connection calls it forwards at once, and a snapshot
/// upload; 128 of them carry 16,384 forwarded calls at the default 128 per connection): past that the
/// node's oldest is aborted for the new one, as a newer message connection replaces an older one (an
/// older one is half-open or not the peer's). At most <see cref="Total"/> in all: past that a new one
/// is refused. Thread-safe.
/// </summary>
public sealed class PeerHttpConnections(int perNode = PeerHttpConnections.DefaultPerNode, int total = PeerHttpConnections.DefaultTotal)
{
    public const int DefaultPerNode = 128;
    public const int DefaultTotal = 1024;
    private readonly Dictionary<int, LinkedList<PeerTlsConnectionContext>> _byNode = new();
    private readonly Lock _gate = new();
    private int _count;

    public int PerNode => perNode;
    public int Total => total;

    /// <summary>Connections held now.</summary>
    public int Count
    {
        get { lock (_gate) return _count; }
    }

    /// <summary>Takes <paramref name="connection"/> of node <paramref name="nodeId"/>; false when all <see cref="Total"/>
    /// places are taken. <paramref name="evicted"/>: the node's oldest, to abort, when it had <see cref="PerNode"/> already.</summary>
    public bool TryAdd(int nodeId, PeerTlsConnectionContext connection, out PeerTlsConnectionContext? evicted)
    {
        evicted = null;
        lock (_gate)
        {
            if (!_byNode.TryGetValue(nodeId, out var list)) _byNode[nodeId] = list = new LinkedList<PeerTlsConnectionContext>();
            if (list.Count >= perNode)
            {
                evicted = list.First!.Value;
                list.RemoveFirst();
                _count--;
            }
            else if (_count >= total)
            {
                if (list.Count == 0) _byNode.Remove(nodeId);
                return false;
            }
            list.AddLast(connection);
            _count++;
            return true;
        }
    }

    /// <summary>Gives back the place of a connection that ended (nothing when it was evicted or never taken).</summary>
    public void Remove(PeerTlsConnectionContext connection)
    {
        lock (_gate)
        {
            if (!_byNode.TryGetValue(connection.NodeId, out var list) || !list.Remove(connection)) return;
            _count--;
            if (list.Count == 0) _byNode.Remove(connection.NodeId);
        }
    }
}
