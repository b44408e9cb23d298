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

    private IReadOnlyList<Member> _departing = [];

    /// <summary>Members the configuration no longer lists that the leader still tells about their
    /// removal (Raft sends to a removed member until its removal is committed, and a while after,
    /// so it learns it and stops standing for election). They are linked to, never listed.</summary>
    public IReadOnlyList<Member> Departing => Volatile.Read(ref _departing);

    /// <summary>Raised on the updating thread after <see cref="Current"/> or <see cref="Departing"/>
    /// changed (the peer transport opens and closes connections from it).</summary>
    public event Action<MemberSet>? Changed;

    public Member? Find(int id) => Current.Find(id);

    public bool Contains(int id) => Current.Contains(id);

    /// <summary>Where this node listens, as it tells its peers in every batch (null: it does not say).</summary>
    public NodeAddress? SelfAddress { get; init; }

    /// <summary>The id of the cluster these members form (docs/security.md, "Cluster identity").</summary>
    public ClusterIdentity Identity { get; init; } = new();

    private IReadOnlyList<Member> _remotes = [];
    private IReadOnlySet<int> _removed = new HashSet<int>();

    /// <summary>
    /// Nodes this node's configuration does not list yet that sent it messages with their address:
    /// a leader (or a peer) added by a configuration entry this node has not received, for example
    /// because it was down, or joined from a snapshot taken before that node was added. Linked to so
    /// that this node can answer them and catch up (etcd learns such peers from the sender's URLs
    /// too); dropped once the configuration lists or removes them. Never listed as members.
    /// </summary>
    public IReadOnlyList<Member> Remotes => Volatile.Read(ref _remotes);

    /// <summary>A member of the configuration, or a node that is linked to as a <see cref="Remotes">remote</see>:
    /// whose messages and snapshots this node takes.</summary>
    public bool IsPeer(int id) => Contains(id) || Remotes.Any(r => r.Id == id);

    /// <summary>Whether this node's configuration removed <paramref name="id"/> (ids are never reused).</summary>
    public bool IsRemoved(int id) => Volatile.Read(ref _removed).Contains(id);

    /// <summary>Whether <paramref name="id"/> was removed and is no longer departing: nothing of it is
    /// taken (connections, batches). A departing member's answers are still taken, so the leader
    /// learns it holds the entry that removed it (<see cref="Departing"/>).</summary>
    public bool IsGone(int id) => IsRemoved(id) && !IsDeparting(id);

    /// <summary>Whether the leader still sends to <paramref name="id"/>, a member it removed (<see cref="Departing"/>).</summary>
    public bool IsDeparting(int id)
    {
        foreach (var d in Departing)
            if (d.Id == id) return true;
        return false;
    }

    /// <summary>
    /// A node outside the configuration sent a batch from <paramref name="address"/>: link to it
    /// (true), unless this node's configuration removed it (ids are never reused) or it is this node.
    /// Called by the node loop.
    /// </summary>
    public bool LearnRemote(NodeAddress address)
    {
        if (address.Id == Self || Volatile.Read(ref _removed).Contains(address.Id) || string.IsNullOrEmpty(address.Host) || address.Port is < 1 or > 65535)
            return false;
        if (Contains(address.Id)) return true;
        var remotes = Remotes;
        if (remotes.FirstOrDefault(r => r.Id == address.Id) is { } known && known.Address == address) return true;
        Volatile.Write(ref _remotes, remotes.Where(r => r.Id != address.Id).Append(new Member(address, MemberRole.Learner)).ToArray());
        Changed?.Invoke(Current);
        return true;
    }

    public void Update(MemberSet next) => Update(next, Departing.Where(d => !next.Contains(d.Id)).ToArray());

    public void Update(MemberSet next, IReadOnlyList<Member> departing, IReadOnlySet<int>? removed = null)
    {
        ArgumentNullException.ThrowIfNull(next);
        ArgumentNullException.ThrowIfNull(departing);
        if (removed is not null) Volatile.Write(ref _removed, removed);
        var gone = Volatile.Read(ref _removed);
        Volatile.Write(ref _remotes, Remotes.Where(r => !next.Contains(r.Id) && !gone.Contains(r.Id)).ToArray());
        Volatile.Write(ref _departing, departing);
        Volatile.Write(ref _current, next);
        Changed?.Invoke(next);
    }
}
