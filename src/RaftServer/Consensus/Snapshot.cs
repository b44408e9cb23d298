namespace RaftServer.Consensus;

/// <summary>
/// What the core knows of a snapshot: the state machine's state after applying every entry up to
/// <see cref="Index"/> (whose term is <see cref="Term"/>), and the configuration in effect at that
/// index (the log entries that carried it are gone once compacted). The data itself never passes
/// through the core: the driver writes it, streams it to a peer and installs it (see
/// <see cref="RaftNode.ReportSnapshot"/> and <see cref="Ready.Snapshot"/>).
/// </summary>
public sealed record SnapshotMetadata(long Index, long Term, Configuration Configuration)
{
    /// <summary>A snapshot whose members are these voters, without addresses (tests).</summary>
    public SnapshotMetadata(long index, long term, IReadOnlyList<int> voters) : this(index, term, Configuration.FromVoters(voters))
    {
    }

    /// <summary>Every member's id at <see cref="Index"/>.</summary>
    public IReadOnlyList<int> Members => Configuration.Ids;
}
