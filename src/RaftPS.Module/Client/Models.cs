using RaftPS.Client;

namespace RaftPS;

/// <summary>The leader of the cluster as a node reports it (Get-RaftLeader).</summary>
public sealed class RaftLeader
{
    public RaftLeader(int id, string address, int port, long term)
    {
        Id = id; Address = address; Port = port; Term = term;
    }

    public int Id { get; }
    public string Address { get; }
    public int Port { get; }
    public long Term { get; }

    public override string ToString() => $"{Id} {new RaftEndpoint(Address, Port)}";
}

/// <summary>
/// A key and its value (Get-RaftValue, Set-RaftValue -PassThru), with its revisions: the revision
/// that last wrote it (<see cref="Revision"/>, what -IfRevision compares), the one that created it,
/// how many writes since (<see cref="Version"/>) and the lease holding it (0: none).
/// </summary>
public sealed class RaftValue
{
    public RaftValue(string key, string value, long revision = 0, long createRevision = 0, long version = 0, long lease = 0)
    {
        Key = key; Value = value; Revision = revision; CreateRevision = createRevision; Version = version; Lease = lease;
    }

    public string Key { get; }
    public string Value { get; }
    /// <summary>The key's mod revision: the cluster revision of the write that set this value.</summary>
    public long Revision { get; }
    public long CreateRevision { get; }
    public long Version { get; }
    public long Lease { get; }

    public override string ToString() => $"{Key}={Value}";
}

/// <summary>What a change did to its key.</summary>
public enum RaftChangeKind
{
    Put = 0,
    Delete = 1,
}

/// <summary>One change of a key, as Watch-RaftValue streams it: in revision order, each once.</summary>
public sealed class RaftChange
{
    public RaftChange(string key, string value, long revision, RaftChangeKind kind, long createRevision, long version, long lease)
    {
        Key = key; Value = value; Revision = revision; Kind = kind; CreateRevision = createRevision; Version = version; Lease = lease;
    }

    public string Key { get; }
    /// <summary>The value written (empty for a delete).</summary>
    public string Value { get; }
    /// <summary>The change's revision (for a delete, the revision of the delete).</summary>
    public long Revision { get; }
    public RaftChangeKind Kind { get; }
    public long CreateRevision { get; }
    public long Version { get; }
    public long Lease { get; }

    public override string ToString() => Kind == RaftChangeKind.Put ? $"{Revision} put {Key}={Value}" : $"{Revision} delete {Key}";
}

/// <summary>A node's role in its current term.</summary>
public enum RaftRole
{
    Follower = 0,
    PreCandidate = 1,
    Candidate = 2,
    Leader = 3,
}

/// <summary>Whether a member votes or only receives the log.</summary>
public enum RaftMemberRole
{
    Voter = 0,
    /// <summary>Receives the log and snapshots; does not vote or count for a majority.</summary>
    Learner = 1,
}

/// <summary>A member of the cluster: its id, the address of its server and its role; from
/// Get-RaftMember also the leader's view of it.</summary>
public sealed class RaftMember
{
    public RaftMember(int id, string address, int port, RaftMemberRole role = RaftMemberRole.Voter)
    {
        Id = id; Address = address; Port = port; Role = role;
    }

    public int Id { get; }
    public string Address { get; }
    public int Port { get; }
    public RaftMemberRole Role { get; }
    /// <summary>Get-RaftMember: whether it is the leader.</summary>
    public bool IsLeader { get; init; }
    /// <summary>Get-RaftMember: the last log entry the leader knows it holds (null when unknown).</summary>
    public long? MatchIndex { get; init; }
    /// <summary>Get-RaftMember: whether the leader heard from it within the last election timeout or two.</summary>
    public bool? Reachable { get; init; }
    /// <summary>Get-RaftMember: how many committed entries it lacks (null when unknown).</summary>
    public long? Behind { get; init; }
    /// <summary>Get-RaftMember: whether its log reached the commit index within the last election
    /// timeout or two, i.e. it keeps pace (a learner in this state can be promoted; null when unknown).</summary>
    public bool? CaughtUp { get; init; }

    public override string ToString() => $"{Id} {new RaftEndpoint(Address, Port)}{(Role == RaftMemberRole.Learner ? " (learner)" : "")}";
}

/// <summary>The leader's view of one follower's replication progress.</summary>
public sealed class RaftPeerProgress
{
    public RaftPeerProgress(int id, long matchIndex, long nextIndex, bool reachable)
    {
        Id = id; MatchIndex = matchIndex; NextIndex = nextIndex; Reachable = reachable;
    }

    public int Id { get; }
    public long MatchIndex { get; }
    public long NextIndex { get; }
    public bool Reachable { get; }

    public override string ToString() => $"{Id} match={MatchIndex} next={NextIndex}{(Reachable ? "" : " unreachable")}";
}

/// <summary>One node's state as its Status call reports it (Get-RaftStatus).</summary>
public sealed class RaftStatus
{
    public int Id { get; init; }
    /// <summary>The address the status was asked at.</summary>
    public string Address { get; init; } = "";
    public int Port { get; init; }
    public RaftRole Role { get; init; }
    public long Term { get; init; }
    /// <summary>The leader this node knows of, or null.</summary>
    public RaftMember? Leader { get; init; }
    public int? LeaderId => Leader?.Id;
    public long CommitIndex { get; init; }
    public long AppliedIndex { get; init; }
    public long FirstIndex { get; init; }
    public long LastIndex { get; init; }
    public long SnapshotIndex { get; init; }
    public long SnapshotTerm { get; init; }
    public long LogBytes { get; init; }
    public RaftMember[] Members { get; init; } = [];
    /// <summary>Replication progress of each follower; only a leader reports it.</summary>
    public RaftPeerProgress[] Peers { get; init; } = [];
    /// <summary>Bytes of live keys and values: what the storage quota measures.</summary>
    public long LiveBytes { get; init; }
    /// <summary>The node's storage quota (--quota-bytes; 0: none).</summary>
    public long QuotaBytes { get; init; }
    /// <summary>The NOSPACE alarm: writes that add data are refused (RaftNoSpace) until deletes free space.</summary>
    public bool NoSpaceAlarm { get; init; }

    public override string ToString() => $"{Id} {Role} term {Term}";
}

/// <summary>A server process started by Start-RaftCluster.</summary>
public sealed class RaftNodeProcess
{
    public int Id { get; init; }
    public string Address { get; init; } = "";
    public int Port { get; init; }
    /// <summary>The server's own process: stopping it stops the node.</summary>
    public int ProcessId { get; init; }
    public string DataDirectory { get; init; } = "";
    public string LogPath { get; init; } = "";
    public string ConfigPath { get; init; } = "";

    public override string ToString() => $"{Id} {new RaftEndpoint(Address, Port)} (process {ProcessId})";
}
