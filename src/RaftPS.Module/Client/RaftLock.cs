using RaftPS.Client;

namespace RaftPS;

/// <summary>
/// A lock held by this session (Lock-RaftKey): its key under the lock's name, the revision that
/// created that key (a fencing token: a later holder always has a higher one) and the lease
/// that holds it, kept alive in the background until Unlock-RaftKey or the end of the runspace.
/// </summary>
public sealed class RaftLock
{
    internal RaftLock(string name, string key, string owner, long revision, KeptLease lease, RaftConnection connection)
    {
        Name = name; Key = key; Owner = owner; Revision = revision; Lease = lease; Connection = connection;
        AcquiredAt = DateTime.Now;
    }

    public string Name { get; }
    /// <summary>The key that holds the lock: "Name/lease id in hex".</summary>
    public string Key { get; }
    /// <summary>Who holds it (the value of the key): "machine/process id".</summary>
    public string Owner { get; }
    /// <summary>The revision that created <see cref="Key"/>: the fencing token (each later holder's is higher).</summary>
    public long Revision { get; }
    public long LeaseId => Lease.Id;
    public long TtlSec => Lease.TtlSeconds;
    public DateTime AcquiredAt { get; }
    /// <summary>False once unlocked, or once the lease was lost (no keep-alive succeeded in time, or it expired).</summary>
    public bool IsHeld => !Released && !Lease.IsLost;
    /// <summary>Why the lock was lost, when it was.</summary>
    public string? LostReason => Released ? null : Lease.LostReason;

    internal KeptLease Lease { get; }
    internal RaftConnection Connection { get; }
    internal bool Released { get; set; }

    public override string ToString() => $"{Name} (revision {Revision})";
}
