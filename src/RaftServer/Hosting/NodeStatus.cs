using RaftServer.Cluster;
using RaftServer.Consensus;

namespace RaftServer.Hosting;

/// <summary>A peer's replication as the leader sees it.</summary>
public sealed record PeerStatus(int Id, long MatchIndex, long NextIndex, bool Reachable, bool IsVoter, bool CaughtUp);

/// <summary>One node's state as the loop saw it when asked (the Status call; Api/ maps it to the wire).</summary>
public sealed record NodeStatus
{
    public required int Id { get; init; }
    public required Role Role { get; init; }
    public required long Term { get; init; }
    /// <summary>The leader this node knows of, or null.</summary>
    public Member? Leader { get; init; }
    public required long CommitIndex { get; init; }
    public required long AppliedIndex { get; init; }
    public required long FirstIndex { get; init; }
    public required long LastIndex { get; init; }
    public required long SnapshotIndex { get; init; }
    public required long SnapshotTerm { get; init; }
    public required long LogBytes { get; init; }
    /// <summary>The members of the configuration in effect (voters and learners).</summary>
    public required IReadOnlyList<Member> Members { get; init; }
    /// <summary>The index of the entry that carries the configuration (0: config.conf's bootstrap).</summary>
    public long ConfigurationIndex { get; init; }
    /// <summary>Whether that configuration is committed (no membership change is in flight).</summary>
    public bool ConfigurationCommitted { get; init; }
    /// <summary>Each peer's progress; empty unless this node leads.</summary>
    public IReadOnlyList<PeerStatus> Peers { get; init; } = [];
    /// <summary>Bytes of live keys and values: what the storage quota measures.</summary>
    public long LiveBytes { get; init; }
    /// <summary>The storage quota (--quota-bytes); 0: none.</summary>
    public long QuotaBytes { get; init; }
    /// <summary>Whether this node's NOSPACE alarm is on (writes that add data are refused).</summary>
    public bool NoSpaceAlarm { get; init; }
}
