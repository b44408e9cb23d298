using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.StateMachine;

namespace RaftServer.Observability;

/// <summary>A leader's view of one peer's log, for the per-peer lag.</summary>
public readonly record struct PeerMatch(int Id, long MatchIndex);

/// <summary>
/// The node's state that lives on the loop thread, copied there when a scrape asks for it
/// (<see cref="MetricsRequested"/>): a scrape costs one loop event and nothing on the hot path.
/// </summary>
public sealed record NodeGauges(
    long CommitIndex, long AppliedIndex, long LastIndex, int PendingWrites, long WritesFailed, long ReadIndexRounds,
    int Keys, long LiveBytes, IReadOnlyList<PeerMatch> Peers, bool NoSpaceAlarm = false)
{
    /// <summary>Made on the loop thread, from the driver's core, store and pending requests.</summary>
    public static NodeGauges Of(RaftNode node, KvStore store, PendingRequests pending)
    {
        var peers = new List<PeerMatch>();
        if (node.Role == Role.Leader)
            foreach (var p in node.Progress)
                if (p.Id != node.Id) peers.Add(new PeerMatch(p.Id, p.Match));
        return new NodeGauges(node.CommitIndex, store.AppliedIndex, node.LastIndex, pending.Writes, pending.WritesFailed, pending.ReadBatchesStarted,
            store.Count, store.LiveBytes, peers);
    }
}
