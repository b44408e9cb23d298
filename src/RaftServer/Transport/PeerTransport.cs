using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using RaftServer.Cluster;
using RaftServer.Consensus;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>Where a Ready's messages go (<see cref="PeerTransport"/>). Snapshot messages carry no
/// data: a sender skips them (the snapshot travels out of band, <see cref="SnapshotSender"/>).</summary>
public interface IMessageSender
{
    void Send(IReadOnlyList<Message> messages);
    /// <summary>Suspend: drop what is queued and send nothing until <see cref="Resume"/>.</summary>
    void Pause();
    void Resume();
}

/// <summary>
/// Sends the messages of one Ready: one <see cref="P.MessageBatch"/> per peer per turn (split
/// only when it would pass <see cref="MaxBatchBytes"/>), through that peer's <see cref="PeerClient"/>.
/// Snapshot messages are not sent here: they name data that travels out of band
/// (<see cref="SnapshotSender"/>), and on the stream they would arrive without it.
/// There is one link per member of the <see cref="Membership"/> other than this node (and per
/// departing member and remote): links are opened and closed as the membership changes.
/// </summary>
public sealed class PeerTransport : IMessageSender, IAsyncDisposable
{
    public const int MaxBatchBytes = 4 << 20;

    private readonly Membership _membership;
    private readonly ILogger _logger;
    private readonly Action<int>? _refused;
    private readonly PeerLinkTimings _timings;
    private readonly PeerHandshake _handshake;
    private readonly ConcurrentDictionary<int, PeerClient> _peers = new();
    private readonly Dictionary<int, (P.MessageBatch Batch, int Bytes)> _pending = new();
    private readonly Lock _gate = new();
    private bool _paused;
    private bool _disposed;

    /// <param name="refused">Called with a peer's id each time a connection to it is refused
    /// (<see cref="PeerClient.Refused"/>): its process is gone.</param>
    /// <param name="timings">How fast a link finds its path silent (default: those of the default timers).</param>
    /// <param name="handshake">This node's hello and the check of its peers' (default: from the membership).</param>
    public PeerTransport(Membership membership, ILogger logger, Action<int>? refused = null, PeerLinkTimings? timings = null, PeerHandshake? handshake = null)
    {
        _membership = membership;
        _logger = logger;
        _refused = refused;
        _timings = timings ?? PeerLinkTimings.Default;
        _handshake = handshake ?? new PeerHandshake(membership.Self, membership.Identity, membership.IsGone, logger);
        Reconcile(membership.Current);
        membership.Changed += Reconcile;
    }

    /// <summary>The link to a member (its gRPC client forwards calls to it); null for a non-member or this node.</summary>
    public PeerClient? Peer(int id) => _peers.GetValueOrDefault(id);

    /// <summary>Opens a link to each new member (or one whose address changed) and closes the
    /// links of members that left (once they are no longer departing, <see cref="Membership.Departing"/>).</summary>
    private void Reconcile(MemberSet current)
    {
        var targets = current.Members
            .Concat(_membership.Departing.Where(d => !current.Contains(d.Id)))
            .Concat(_membership.Remotes.Where(r => !current.Contains(r.Id)))
            .DistinctBy(m => m.Id).ToArray();
        List<PeerClient> closing = [];
        lock (_gate)
        {
            if (_disposed) return;
            foreach (var (id, client) in _peers)
                if (targets.FirstOrDefault(t => t.Id == id) is not { } m || m.Address != client.Address)
                {
                    _peers.TryRemove(id, out _);
                    closing.Add(client);
                }
            foreach (var m in targets)
            {
                if (m.Id == _membership.Self || _peers.ContainsKey(m.Id)) continue;
                var client = new PeerClient(m.Address, _logger, _timings, _handshake);
                var id = m.Id;
                if (_refused is { } refused) client.Refused = () => refused(id);
                if (_paused) client.Pause();
                _peers[m.Id] = client;
            }
        }
        foreach (var c in closing) _ = c.DisposeAsync().AsTask();
    }

    /// <summary>Called by the node loop only.</summary>
    public void Send(IReadOnlyList<Message> messages)
    {
        if (messages.Count == 0) return;
        for (var i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            if (m.Type == MessageType.Snapshot) continue; // the node loop hands these to SnapshotSender
            if (!_peers.TryGetValue(m.To, out var peer)) continue;
            var size = MessageMapper.EstimateSize(m);
            if (_pending.TryGetValue(m.To, out var slot) && slot.Bytes + size > MaxBatchBytes && slot.Batch.Messages.Count > 0)
            {
                peer.Send(slot.Batch);
                slot = default;
            }
            slot.Batch ??= NewBatch();
            slot.Batch.Messages.Add(MessageMapper.ToProto(m));
            slot.Bytes += size;
            _pending[m.To] = slot;
        }
        foreach (var (to, slot) in _pending)
            if (slot.Batch is not null && _peers.TryGetValue(to, out var peer)) peer.Send(slot.Batch);
        _pending.Clear();
    }

    /// <summary>A batch from this node, saying where it listens (for a peer that does not know it yet).</summary>
    private P.MessageBatch NewBatch()
    {
        var batch = new P.MessageBatch { From = _membership.Self };
        if (_membership.SelfAddress is { } self)
        {
            batch.FromHost = self.Host;
            batch.FromPort = self.Port;
        }
        return batch;
    }

    public void Pause()
    {
        lock (_gate)
        {
            _paused = true;
            foreach (var p in _peers.Values) p.Pause();
        }
    }

    public void Resume()
    {
        lock (_gate)
        {
            _paused = false;
            foreach (var p in _peers.Values) p.Resume();
        }
    }

    public async ValueTask DisposeAsync()
    {
        List<PeerClient> all;
        lock (_gate)
        {
            _disposed = true;
            _membership.Changed -= Reconcile;
            all = [.. _peers.Values];
            _peers.Clear();
        }
        foreach (var p in all) await p.DisposeAsync();
    }
}
