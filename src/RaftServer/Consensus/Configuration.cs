using System.Buffers.Binary;
using System.Text;

namespace RaftServer.Consensus;

/// <summary>Whether a member votes (and counts for every quorum) or only receives the log.</summary>
public enum MemberRole : byte
{
    Voter = 0,
    /// <summary>Receives the log and snapshots; never votes, campaigns or counts for a quorum.</summary>
    Learner = 1,
}

/// <summary>One member of a configuration: its id, role, and where it listens (the core only
/// carries the address, for the hosts that need it: peers connect there).</summary>
public sealed record ConfigMember(int Id, MemberRole Role, string Host, int Port)
{
    public bool IsVoter => Role == MemberRole.Voter;
}

/// <summary>What one configuration differs from the one before it in (a single-server change).</summary>
public enum ChangeKind { AddLearner, AddVoter, Promote, Remove }

public readonly record struct ConfigChange(ChangeKind Kind, int Id);

/// <summary>
/// The cluster's members as the log carries them (Raft dissertation §4): the data of a
/// <see cref="EntryKind.Configuration"/> entry and the configuration recorded in a snapshot.
/// Immutable; members in id order, at most one per id.
/// </summary>
public sealed class Configuration : IEquatable<Configuration>
{
    /// <summary>No members: a node that knows of no configuration yet (one that joins) never campaigns.</summary>
    public static readonly Configuration Empty = new([]);

    /// <summary>Larger than any real cluster; bounds what a damaged or forged encoding makes us allocate.</summary>
    public const int MaxMembers = 1024;
    /// <summary>Bounds the removed ids a configuration remembers (and what a damaged encoding makes us read).</summary>
    public const int MaxRemoved = 65536;
    private const byte FormatVersion = 1;
    private const int MaxHostBytes = 255;

    private readonly ConfigMember[] _members;
    private readonly int[] _removed;

    /// <param name="removed">Ids of members removed so far: never members again (ids are not reused).</param>
    public Configuration(IEnumerable<ConfigMember> members, IEnumerable<int>? removed = null)
    {
        _members = members.OrderBy(m => m.Id).ToArray();
        _removed = (removed ?? []).Distinct().Order().ToArray();
        if (_removed.Length > MaxRemoved) throw new ArgumentException($"{_removed.Length} removed ids; at most {MaxRemoved}");
        if (_members.Length > MaxMembers) throw new ArgumentException($"{_members.Length} members; at most {MaxMembers}");
        for (int i = 0; i < _members.Length; i++)
        {
            var m = _members[i];
            if (m.Id < 0) throw new ArgumentException($"node id {m.Id} is negative");
            if (m.Role is not (MemberRole.Voter or MemberRole.Learner)) throw new ArgumentException($"node {m.Id} has an unknown role {(int)m.Role}");
            if (Encoding.UTF8.GetByteCount(m.Host) > MaxHostBytes) throw new ArgumentException($"node {m.Id}'s host is longer than {MaxHostBytes} bytes");
            if (m.Port is < 0 or > 65535) throw new ArgumentException($"node {m.Id}'s port {m.Port} is out of range");
            if (i > 0 && _members[i - 1].Id == m.Id) throw new ArgumentException($"node {m.Id} is listed twice");
            if (Array.BinarySearch(_removed, m.Id) >= 0) throw new ArgumentException($"node {m.Id} was removed from the cluster: ids are not reused");
        }
        VoterIds = _members.Where(m => m.IsVoter).Select(m => m.Id).ToArray();
        Ids = _members.Select(m => m.Id).ToArray();
    }

    /// <summary>Voters without addresses (tests, and the members of a snapshot written before snapshots carried addresses).</summary>
    public static Configuration FromVoters(IEnumerable<int> ids) => new(ids.Select(id => new ConfigMember(id, MemberRole.Voter, "", 0)));

    public IReadOnlyList<ConfigMember> Members => _members;
    /// <summary>Ids removed from the cluster so far, in order: a removed node never rejoins under its
    /// id (a wiped machine could otherwise grant a second vote in a term it voted in before).</summary>
    public IReadOnlyList<int> RemovedIds => _removed;
    public bool WasRemoved(int id) => Array.BinarySearch(_removed, id) >= 0;
    /// <summary>Every member's id, in order.</summary>
    public int[] Ids { get; }
    /// <summary>The voters' ids, in order.</summary>
    public int[] VoterIds { get; }
    public int Count => _members.Length;

    public ConfigMember? Find(int id)
    {
        foreach (var m in _members)
            if (m.Id == id) return m;
        return null;
    }

    public bool Contains(int id) => Find(id) is not null;

    public bool IsVoter(int id) => Find(id) is { IsVoter: true };

    /// <summary>A majority of the voters.</summary>
    public int Quorum => VoterIds.Length / 2 + 1;

    /// <summary>
    /// The single-server change that turns <paramref name="previous"/> into this configuration, or
    /// null when they differ in more (or in nothing, or in a member's address: a node that moves
    /// is replaced, under a new id). Single-server changes are what make it safe for a
    /// configuration to take effect as soon as it is appended (dissertation §4.1): any majority
    /// of the old voters and any majority of the new ones overlap.
    /// </summary>
    public ConfigChange? ChangeFrom(Configuration previous)
    {
        ConfigChange? change = null;
        foreach (var m in _members)
        {
            var before = previous.Find(m.Id);
            ConfigChange? this1;
            if (before is null) this1 = new ConfigChange(m.IsVoter ? ChangeKind.AddVoter : ChangeKind.AddLearner, m.Id);
            // Filling in an address the configuration lacked (one recorded before configurations
            // carried addresses) is no change; anything else is a move: replace the node instead.
            else if (before.Host.Length > 0 && (before.Host != m.Host || before.Port != m.Port)) return null;
            else if (before.Role == m.Role) continue;
            else if (m.IsVoter) this1 = new ConfigChange(ChangeKind.Promote, m.Id);
            else return null; // demotion: remove the voter instead
            if (change is not null) return null;
            change = this1;
        }
        foreach (var m in previous.Members)
        {
            if (Contains(m.Id)) continue;
            if (change is not null) return null;
            change = new ConfigChange(ChangeKind.Remove, m.Id);
        }
        // The removed ids grow by the one removed, and only then.
        var expected = change is { Kind: ChangeKind.Remove } removal ? previous._removed.Append(removal.Id).Order() : previous._removed.AsEnumerable();
        return _removed.SequenceEqual(expected) ? change : null;
    }

    /// <summary>This configuration after <paramref name="change"/> (a member added is <paramref name="added"/>).</summary>
    public Configuration With(ConfigChange change, ConfigMember? added = null) => change.Kind switch
    {
        ChangeKind.AddLearner or ChangeKind.AddVoter => new(_members.Append(added ?? throw new ArgumentNullException(nameof(added))), _removed),
        ChangeKind.Promote => new(_members.Select(m => m.Id == change.Id ? m with { Role = MemberRole.Voter } : m), _removed),
        ChangeKind.Remove => new(_members.Where(m => m.Id != change.Id), _removed.Append(change.Id)),
        _ => throw new ArgumentOutOfRangeException(nameof(change)),
    };

    /// <summary><c>[u8 version][u16 count]{[i32 id][u8 role][u8 host length][host UTF-8][u16 port]}[i32 removed count]{[i32 id]}</c>, little-endian.</summary>
    public byte[] Encode()
    {
        int size = 1 + 2 + 4 + 4 * _removed.Length;
        foreach (var m in _members) size += 4 + 1 + 1 + Encoding.UTF8.GetByteCount(m.Host) + 2;
        var data = new byte[size];
        var span = data.AsSpan();
        span[0] = FormatVersion;
        BinaryPrimitives.WriteUInt16LittleEndian(span[1..], (ushort)_members.Length);
        int at = 3;
        foreach (var m in _members)
        {
            BinaryPrimitives.WriteInt32LittleEndian(span[at..], m.Id);
            span[at + 4] = (byte)m.Role;
            int hostBytes = Encoding.UTF8.GetBytes(m.Host, span[(at + 6)..]);
            span[at + 5] = (byte)hostBytes;
            at += 6 + hostBytes;
            BinaryPrimitives.WriteUInt16LittleEndian(span[at..], (ushort)m.Port);
            at += 2;
        }
        BinaryPrimitives.WriteInt32LittleEndian(span[at..], _removed.Length);
        at += 4;
        foreach (var id in _removed)
        {
            BinaryPrimitives.WriteInt32LittleEndian(span[at..], id);
            at += 4;
        }
        return data;
    }

    /// <exception cref="InvalidDataException">not a configuration this version can read.</exception>
    public static Configuration Decode(ReadOnlySpan<byte> data)
    {
        if (data.Length < 3) throw new InvalidDataException($"a configuration of {data.Length} bytes is too short");
        if (data[0] != FormatVersion) throw new InvalidDataException($"unknown configuration format {data[0]}");
        int count = BinaryPrimitives.ReadUInt16LittleEndian(data[1..]);
        if (count > MaxMembers) throw new InvalidDataException($"{count} members; at most {MaxMembers}");
        var members = new ConfigMember[count];
        int at = 3;
        for (int i = 0; i < count; i++)
        {
            if (data.Length < at + 6) throw new InvalidDataException("the configuration ends inside a member");
            int id = BinaryPrimitives.ReadInt32LittleEndian(data[at..]);
            var role = (MemberRole)data[at + 4];
            int hostBytes = data[at + 5];
            if (data.Length < at + 6 + hostBytes + 2) throw new InvalidDataException("the configuration ends inside a member");
            string host;
            try
            {
                host = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(data.Slice(at + 6, hostBytes));
            }
            catch (DecoderFallbackException e)
            {
                throw new InvalidDataException($"node {id}'s host is not UTF-8", e);
            }
            int port = BinaryPrimitives.ReadUInt16LittleEndian(data[(at + 6 + hostBytes)..]);
            members[i] = new ConfigMember(id, role, host, port);
            at += 6 + hostBytes + 2;
        }
        if (data.Length < at + 4) throw new InvalidDataException("the configuration ends before its removed ids");
        int removedCount = BinaryPrimitives.ReadInt32LittleEndian(data[at..]);
        at += 4;
        if (removedCount < 0 || removedCount > MaxRemoved || data.Length != at + 4L * removedCount)
            throw new InvalidDataException($"the configuration's {removedCount} removed ids do not fill its {data.Length - at} remaining bytes");
        var removed = new int[removedCount];
        for (int i = 0; i < removedCount; i++) removed[i] = BinaryPrimitives.ReadInt32LittleEndian(data[(at + 4 * i)..]);
        try
        {
            return new Configuration(members, removed);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException(e.Message, e);
        }
    }

    public bool Equals(Configuration? other) =>
        other is not null && _members.AsSpan().SequenceEqual(other._members) && _removed.AsSpan().SequenceEqual(other._removed);

    public override bool Equals(object? obj) => Equals(obj as Configuration);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (var m in _members) hash.Add(m);
        foreach (var id in _removed) hash.Add(id);
        return hash.ToHashCode();
    }

    public override string ToString() =>
        _members.Length == 0 ? "(none)" : string.Join(", ", _members.Select(m => m.IsVoter ? $"{m.Id}" : $"{m.Id} (learner)"));
}
