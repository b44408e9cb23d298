using Microsoft.Extensions.Logging;
using RaftServer.StateMachine;

namespace RaftServer.Hosting;

/// <summary>
/// The storage quota (<c>--quota-bytes</c>) and its NOSPACE alarm, etcd's
/// <c>--quota-backend-bytes</c> for this store. What is measured is the live data: the bytes of
/// the keys (UTF-8) and values the state machine holds (<see cref="KvStore.LiveBytes"/>). That is
/// what every snapshot writes out in full and what the node holds in memory, it is the same on
/// every member at the same applied index, and it costs nothing to know. The log on disk is
/// bounded by compaction (about one segment past the previous snapshot), so it needs no quota of
/// its own.
/// <para>
/// The leader checks each write that adds data (Put, and a lease grant) before proposing it: when
/// the live data plus the entry would pass the quota, the alarm goes on and every such write is
/// refused with NOSPACE until the live data is back at or under <see cref="ClearBytes"/> (90% of the
/// quota: deleting a few keys does not let the next write in only to refuse the one after). Reads,
/// deletes, lease revokes, keep-alives and membership changes are always served. The alarm is
/// this node's own (docs/security.md, "Storage quota"). Owned by the node loop: not thread-safe.
/// </para>
/// </summary>
public sealed class StorageQuota(long quotaBytes, ILogger logger)
{
    /// <summary>etcd's default: the whole state is in memory and each snapshot writes all of it (docs/security.md).</summary>
    public const long DefaultBytes = 2L << 30;

    public long QuotaBytes { get; } = quotaBytes;

    /// <summary>Where the alarm clears: 90% of the quota.</summary>
    public long ClearBytes => QuotaBytes / 10 * 9;

    /// <summary>Whether writes that add data are refused.</summary>
    public bool Alarm { get; private set; }

    /// <summary>
    /// Whether the command <paramref name="data"/> may be proposed with <paramref name="usedBytes"/>
    /// of live data: null when it may, else the client's NOSPACE message.
    /// </summary>
    public string? Refuse(byte[] data, long usedBytes)
    {
        if (data.Length == 0 || (CommandOp)data[0] is not (CommandOp.Put or CommandOp.Set or CommandOp.LeaseGrant)) return null;
        Update(usedBytes);
        if (!Alarm && usedBytes + data.Length <= QuotaBytes) return null;
        if (!Alarm)
        {
            Alarm = true;
            logger.LogWarning("NOSPACE alarm: the live data ({Used} bytes of keys and values) and a write of {Write} bytes would pass the storage quota of {Quota} bytes; " +
                "writes are refused until deletes bring it to {Clear} bytes or less (reads and deletes are served)", usedBytes, data.Length, QuotaBytes, ClearBytes);
        }
        return $"NOSPACE: the cluster's storage quota of {QuotaBytes} bytes is used up ({usedBytes} bytes of keys and values; writes resume at {ClearBytes} bytes or less); delete keys or raise --quota-bytes";
    }

    /// <summary>Clears the alarm once the live data is back at <see cref="ClearBytes"/> or less.</summary>
    public void Update(long usedBytes)
    {
        if (!Alarm || usedBytes > ClearBytes) return;
        Alarm = false;
        logger.LogInformation("NOSPACE alarm cleared: the live data is {Used} bytes, at or under {Clear} bytes (90% of the quota of {Quota})", usedBytes, ClearBytes, QuotaBytes);
    }
}
