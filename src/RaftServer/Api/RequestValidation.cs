using System.Text;
using Grpc.Core;

namespace RaftServer.Api;

/// <summary>Argument checks of the client service; each failure is an InvalidArgument RpcException.</summary>
public static class RequestValidation
{
    public const int MaxKeyBytes = 1024;
    public const int MaxValueBytes = 1 << 20;
    public const int DefaultRangeLimit = 1000;
    public const int MaxRangeLimit = 10000;
    public const double MaxSuspendSeconds = 24 * 3600;
    public const int MaxBatchItems = 1000;
    public const int MaxBatchBytes = 4 << 20;

    public static void Key(string key)
    {
        if (string.IsNullOrEmpty(key)) throw Invalid("the key is empty");
        if (key.Length > MaxKeyBytes || Encoding.UTF8.GetByteCount(key) > MaxKeyBytes)
            throw Invalid($"the key is {Encoding.UTF8.GetByteCount(key)} bytes; at most {MaxKeyBytes} (1 KiB) are allowed");
    }

    public static void Value(int length)
    {
        if (length > MaxValueBytes)
            throw Invalid($"the value is {length} bytes; at most {MaxValueBytes} (1 MiB) are allowed");
    }

    /// <summary>A SetMany request: at most 1000 items and 4 MiB (its encoded size) in all.</summary>
    public static void Batch(int items, int bytes)
    {
        if (items > MaxBatchItems) throw Invalid($"the batch has {items} items; at most {MaxBatchItems} are allowed");
        if (bytes > MaxBatchBytes) throw Invalid($"the batch is {bytes} bytes; at most {MaxBatchBytes} (4 MiB) are allowed");
    }

    public static void Prefix(string prefix, string startAfter)
    {
        if (Encoding.UTF8.GetByteCount(prefix) > MaxKeyBytes) throw Invalid($"the prefix is over {MaxKeyBytes} bytes");
        if (Encoding.UTF8.GetByteCount(startAfter) > MaxKeyBytes) throw Invalid($"start_after is over {MaxKeyBytes} bytes");
    }

    /// <summary>0 means the default (1000); more than 10000 is capped; negative is an error.</summary>
    public static int Limit(int limit)
    {
        if (limit < 0) throw Invalid($"the limit {limit} is negative");
        return limit == 0 ? DefaultRangeLimit : Math.Min(limit, MaxRangeLimit);
    }

    public static void SuspendSeconds(double seconds)
    {
        if (double.IsNaN(seconds) || seconds <= 0 || seconds > MaxSuspendSeconds)
            throw Invalid($"the suspend period {seconds} s is not between 0 and {MaxSuspendSeconds} s");
    }

    public static void MemberId(int id)
    {
        if (id < 0) throw Invalid($"the node id {id} is negative");
    }

    /// <summary>A new member's address: a host name or IP address, and a port.</summary>
    public static void Address(string host, int port)
    {
        if (string.IsNullOrWhiteSpace(host)) throw Invalid("the address is empty");
        if (Encoding.UTF8.GetByteCount(host) > 255 || Uri.CheckHostName(host) == UriHostNameType.Unknown)
            throw Invalid($"'{host}' is not a valid host name or address");
        if (port is < 1 or > 65535) throw Invalid($"the port {port} is not from 1 to 65535");
    }

    /// <summary>Leases live 1 s to 30 days.</summary>
    public const long MaxLeaseTtlSeconds = 30L * 24 * 3600;

    /// <summary>A lease id given with a write: 0 (none) or positive.</summary>
    public static void Lease(long lease)
    {
        if (lease < 0) throw Invalid($"the lease id {lease} is negative");
    }

    public static void LeaseTtl(long seconds)
    {
        if (seconds < 1 || seconds > MaxLeaseTtlSeconds)
            throw Invalid($"the lease's time to live {seconds} s is not between 1 and {MaxLeaseTtlSeconds} s (30 days)");
    }

    public static void LeaseId(long id)
    {
        if (id <= 0) throw Invalid($"the lease id {id} is not positive");
    }

    /// <summary>A watched key (or, with <paramref name="prefix"/>, a prefix, which may be empty: every key).</summary>
    public static void WatchKey(string key, bool prefix)
    {
        if (prefix)
        {
            if (Encoding.UTF8.GetByteCount(key) > MaxKeyBytes) throw Invalid($"the prefix is over {MaxKeyBytes} bytes");
        }
        else
            Key(key);
    }

    public static void StartRevision(long revision)
    {
        if (revision < 0) throw Invalid($"the start revision {revision} is negative");
    }

    public static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));
}
