using System.Globalization;
using System.Security.Cryptography;

namespace RaftServer.Cluster;

/// <summary>
/// The id of the cluster this node belongs to: a random 64-bit number the cluster's first leader
/// makes and commits to the log, so that every member learns the same one (docs/security.md,
/// "Cluster identity"). 0 means "not known yet": a node of a cluster still forming, one whose
/// data directory predates cluster ids, or one that joined before the cluster had an id. Peers
/// of two different known ids refuse each other; a node that knows none yet is accepted (it
/// could not otherwise catch up on the entry that tells it). Once known, the id never changes:
/// it is written (file and directory fsynced) before anything depends on it.
/// Any thread may read it; <see cref="TryAdopt"/> is serialised.
/// </summary>
public sealed class ClusterIdentity
{
    public const ulong Unknown = 0;

    private readonly Action<ulong>? _persist;
    private readonly Lock _gate = new();
    private ulong _id;

    /// <param name="known">The id read from the data directory, or <see cref="Unknown"/>.</param>
    /// <param name="persist">Makes an adopted id durable (throws on an I/O failure: nothing is adopted then).</param>
    public ClusterIdentity(ulong known = Unknown, Action<ulong>? persist = null)
    {
        _id = known;
        _persist = persist;
    }

    public ulong Id => Volatile.Read(ref _id);

    public bool Known => Id != Unknown;

    /// <summary>
    /// Takes <paramref name="id"/> as this cluster's id unless one is known already. True when
    /// <paramref name="id"/> is (now) this node's id, false when another id was known before.
    /// </summary>
    /// <exception cref="IOException">the id could not be made durable.</exception>
    public bool TryAdopt(ulong id)
    {
        if (id == Unknown) throw new ArgumentOutOfRangeException(nameof(id), "0 is not a cluster id");
        lock (_gate)
        {
            if (_id != Unknown) return _id == id;
            _persist?.Invoke(id);
            Volatile.Write(ref _id, id);
            return true;
        }
    }

    /// <summary>Whether a peer that says <paramref name="theirs"/> may talk to this node: either side
    /// may not know its id yet; two known ids must be equal.</summary>
    public bool Accepts(ulong theirs) => theirs == Unknown || Id == Unknown || theirs == Id;

    /// <summary>A fresh random id (never <see cref="Unknown"/>).</summary>
    public static ulong NewId()
    {
        Span<byte> bytes = stackalloc byte[8];
        ulong id;
        do
        {
            RandomNumberGenerator.Fill(bytes);
            id = BitConverter.ToUInt64(bytes);
        } while (id == Unknown);
        return id;
    }

    /// <summary>16 hex digits, or "none" for <see cref="Unknown"/>: how logs and files show an id.</summary>
    public static string Format(ulong id) => id == Unknown ? "none" : id.ToString("x16", CultureInfo.InvariantCulture);

    public static bool TryParse(string text, out ulong id) =>
        ulong.TryParse(text.Trim(), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out id) && id != Unknown;

    public override string ToString() => Format(Id);
}
