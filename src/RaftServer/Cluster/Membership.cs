using RaftServer.Consensus;

namespace RaftServer.Cluster;

/// <summary>One member of the cluster: where it listens and whether it votes.</summary>
public sealed record Member(NodeAddress Address, MemberRole Role = MemberRole.Voter)
{
    public int Id => Address.Id;
}

/// <summary>An immutable list of members, in id order; at most one per id.</summary>
public sealed class MemberSet
{
    private readonly Member[] _members;

    public MemberSet(IEnumerable<Member> members)
    {
        _members = members.OrderBy(m => m.Id).ToArray();
        for (var i = 1; i < _members.Length; i++)
            if (_members[i].Id == _members[i - 1].Id) throw new ArgumentException($"node {_members[i].Id} is listed twice");
    }

    /// <summary>The members config.conf lists, every one a voter (a new cluster's bootstrap).</summary>
    public static MemberSet FromConfig(ClusterConfig config) => new(config.Nodes.Select(n => new Member(n)));

    /// <summary>
    /// The members of a configuration the log carries. A member without an address (in a snapshot
    /// written before snapshots carried addresses) keeps the one <paramref name="known"/> has for it.
    /// </summary>
    public static MemberSet FromConfiguration(Configuration configuration, MemberSet? known = null) =>
        new(configuration.Members.Select(m =>
        {
            var address = m.Host.Length > 0 ? new NodeAddress(m.Id, m.Host, m.Port) : known?.Find(m.Id)?.Address ?? new NodeAddress(m.Id, "", 0);
            return new Member(address, m.Role);
        }));

    /// <summary>This set as a configuration (for config.conf's bootstrap).</summary>
    public Configuration ToConfiguration() =>
        new(_members.Select(m => new ConfigMember(m.Id, m.Role, m.Address.Host, m.Address.Port)));

    public IReadOnlyList<Member> Members => _members;

    public Member? Find(int id)
    {
        foreach (var m in _members)
            if (m.Id == id) return m;
        return null;
    }

    public bool Contains(int id) => Find(id) is not null;

    public int[] VoterIds => _members.Where(m => m.Role == MemberRole.Voter).Select(m => m.Id).ToArray();

    public override string ToString() => string.Join(", ", _members.Select(m => m.Role == MemberRole.Voter ? m.Address.ToString() : $"{m.Address} (learner)"));
}

/// <summary>
/// The node's members at run time: the one place the member list lives. The peer transport, the
/// snapshot sender and receiver, the inbox that filters peers' messages and Status all read it;
/// a membership change replaces <see cref="Current"/> here and nowhere else. Reads are lock-free
/// (an immutable <see cref="MemberSet"/> behind a volatile reference), so any thread may read;
/// <see cref="Update"/> is called by the node loop.
/// </summary>
public sealed class Membership(int self, MemberSet initial)
{
    private MemberSet _current = initial;

    /// <summary>This node's id.</summary>
    public int Self { get; } = self;

    public MemberSet Current => Volatile.Read(ref _current);

    /// <summary>Raised on the updating thread after <see cref="Current"/> changed (the peer
    /// transport opens and closes connections from it).</summary>
    public event Action<MemberSet>? Changed;

    public Member? Find(int id) => Current.Find(id);

    public bool Contains(int id) => Current.Contains(id);

    public void Update(MemberSet next)
    {
        ArgumentNullException.ThrowIfNull(next);
        Volatile.Write(ref _current, next);
        Changed?.Invoke(next);
    }
}
