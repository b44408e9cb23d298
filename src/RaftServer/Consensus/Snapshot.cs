namespace RaftServer.Consensus;

/// <summary>
/// What the core knows of a snapshot: the state machine's state after applying every entry up to
/// <see cref="Index"/> (whose term is <see cref="Term"/>), and the member list at that point (for
/// membership changes). The data itself never passes through the core: the driver writes it,
/// streams it to a peer and installs it (see <see cref="RaftNode.ReportSnapshot"/> and
/// <see cref="Ready.Snapshot"/>).
/// </summary>
public sealed record SnapshotMetadata(long Index, long Term, IReadOnlyList<int> Members);
