using Microsoft.Extensions.Logging;
using RaftServer.Consensus;
using RaftServer.Hosting;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>
/// Sends the messages of one Ready: one <see cref="P.MessageBatch"/> per peer per turn (split
/// only when it would pass <see cref="MaxBatchBytes"/>), through that peer's <see cref="PeerClient"/>.
/// Snapshot messages are not sent here: they name data that travels out of band
/// (<see cref="SnapshotSender"/>), and on the stream they would arrive without it.
/// </summary>
public sealed class PeerTransport : IAsyncDisposable
{
    public const int MaxBatchBytes = 4 << 20;

    private readonly int _self;
    private readonly Dictionary<int, PeerClient> _peers = new();
    private readonly Dictionary<int, (P.MessageBatch Batch, int Bytes)> _pending = new();

    public PeerTransport(int self, IEnumerable<NodeAddress> members, ILogger logger)
    {
        _self = self;
        foreach (var m in members)
            if (m.Id != self) _peers[m.Id] = new PeerClient(m, logger);
    }

    public PeerClient? Peer(int id) => _peers.GetValueOrDefault(id);

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
            slot.Batch ??= new P.MessageBatch { From = _self };
            slot.Batch.Messages.Add(MessageMapper.ToProto(m));
            slot.Bytes += size;
            _pending[m.To] = slot;
        }
        foreach (var (to, slot) in _pending)
            if (slot.Batch is not null) _peers[to].Send(slot.Batch);
        _pending.Clear();
    }

    public void Pause()
    {
        foreach (var p in _peers.Values) p.Pause();
    }

    public void Resume()
    {
        foreach (var p in _peers.Values) p.Resume();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var p in _peers.Values) await p.DisposeAsync();
    }
}
