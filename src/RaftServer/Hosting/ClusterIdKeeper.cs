using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using RaftServer.Cluster;
using RaftServer.Consensus;

namespace RaftServer.Hosting;

/// <summary>
/// How a cluster gets its id and every member learns the same one (docs/security.md, "Cluster
/// identity"): a leader that knows no id proposes a no-op entry carrying a fresh random one; the
/// first such entry to commit is the cluster's id, and every node adopts it (durably) as it applies
/// that entry. Later ones are ignored: all nodes apply the same committed entries in the same
/// order, so they all adopt the same id. A brand-new cluster gets its id from its first leader; a
/// cluster whose data directories predate cluster ids gets one at its next election. The state
/// machine ignores no-op entries, so the entry changes no key and no revision.
/// Called on the node loop's thread only.
/// </summary>
public sealed class ClusterIdKeeper(ClusterIdentity identity, ILogger logger)
{
    private static ReadOnlySpan<byte> Magic => "RAFTPS-CLUSTER-ID\n"u8;
    private long _proposedInTerm = -1;

    public ClusterIdentity Identity => identity;

    /// <summary>Each tick: a leader that knows no id yet proposes one, once per term.</summary>
    public void Tick(RaftNode node)
    {
        if (identity.Known || node.Role != Role.Leader || node.Term == _proposedInTerm) return;
        var result = node.Propose(Encode(ClusterIdentity.NewId()), EntryKind.NoOp);
        if (result.Outcome == ProposeOutcome.Accepted) _proposedInTerm = node.Term;
    }

    /// <summary>A committed entry: the first committed id is adopted and made durable.</summary>
    /// <exception cref="IOException">the id could not be written: the node stops, as for any failed write.</exception>
    public void Applied(Entry entry)
    {
        if (entry.Kind != EntryKind.NoOp || identity.Known || !TryDecode(entry.Data, out var id)) return;
        if (identity.TryAdopt(id))
            logger.LogInformation("This node belongs to cluster {ClusterId} (committed at index {Index})", ClusterIdentity.Format(id), entry.Index);
    }

    public static byte[] Encode(ulong id)
    {
        var data = new byte[Magic.Length + 8];
        Magic.CopyTo(data);
        BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan(Magic.Length), id);
        return data;
    }

    public static bool TryDecode(ReadOnlySpan<byte> data, out ulong id)
    {
        id = ClusterIdentity.Unknown;
        if (data.Length != Magic.Length + 8 || !data.StartsWith(Magic)) return false;
        id = BinaryPrimitives.ReadUInt64LittleEndian(data[Magic.Length..]);
        return id != ClusterIdentity.Unknown;
    }
}
