namespace RaftPS;

/// <summary>How a member answered the cluster-wide status (Get-RaftStatus -All, Watch-RaftCluster).</summary>
public enum RaftNodeHealth
{
    Ok,
    /// <summary>Its process answered: it is suspended (Suspend-RaftNode).</summary>
    Suspended,
    /// <summary>No answer in time (the process is down, or the network is cut).</summary>
    Unreachable,
}

/// <summary>
/// One member's row of the cluster-wide status: its state as its own Status call reported it, or
/// why there is none. Rates (reads/s, writes/s) are the live view's: between two polls.
/// </summary>
public sealed class RaftNodeStatus
{
    /// <summary>Null when the member never answered and no other member named it.</summary>
    public int? Id { get; init; }
    public string Address { get; init; } = "";
    public int Port { get; init; }
    public string Endpoint => $"{Address}:{Port}";
    public RaftNodeHealth Health { get; init; }
    /// <summary>Why there is no status (Health not Ok).</summary>
    public string? Error { get; init; }
    public RaftRole? Role { get; init; }
    public bool IsLeader => Role == RaftRole.Leader;
    public long? Term { get; init; }
    public int? LeaderId { get; init; }
    public long? CommitIndex { get; init; }
    public long? AppliedIndex { get; init; }
    public long? LastIndex { get; init; }
    /// <summary>Committed entries (by the leader's commit index) this member has not applied yet.</summary>
    public long? Lag { get; init; }
    /// <summary>Bytes of log on disk.</summary>
    public long? LogBytes { get; init; }
    /// <summary>Time since a leader's last heartbeat or append reached it (null on the leader).</summary>
    public TimeSpan? SinceLeaderContact { get; init; }
    /// <summary>Client reads and writes it answered since it started.</summary>
    public long? ReadsTotal { get; init; }
    public long? WritesTotal { get; init; }
    /// <summary>p99 of its last 1024 synced WAL saves (write and fsync).</summary>
    public TimeSpan? FsyncP99 { get; init; }
    /// <summary>Reads and writes per second between the live view's last two polls.</summary>
    public double? ReadsPerSecond { get; set; }
    public double? WritesPerSecond { get; set; }
    /// <summary>The storage quota's NOSPACE alarm: writes that add data are refused until deletes free space.</summary>
    public bool? NoSpaceAlarm { get; init; }

    public override string ToString() => Health == RaftNodeHealth.Ok ? $"{Id} {Role} term {Term}" : $"{Id} {Endpoint} {Health}";
}
