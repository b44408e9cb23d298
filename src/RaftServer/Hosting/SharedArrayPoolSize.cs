using System.Globalization;

namespace RaftServer.Hosting;

/// <summary>
/// How many arrays of each size the process-wide <c>ArrayPool&lt;byte&gt;.Shared</c> keeps. The
/// runtime reads it from the environment once, when the pool is first used, so
/// <see cref="Configure"/> runs first in Main.
/// </summary>
public static class SharedArrayPoolSize
{
    public const string Variable = "DOTNET_SYSTEM_BUFFERS_SHAREDARRAYPOOL_MAXARRAYSPERPARTITION";

    /// <summary>Arrays of each size kept per partition (one partition per core; the runtime's default is 32).</summary>
    public const int ArraysPerPartition = 1024;

    /// <summary>
    /// An HTTP/2 gRPC client (SocketsHttpHandler) rents a 32 KiB array per request's headers and
    /// a 16 KiB block per response body from the shared pool, and Kestrel gives each request body
    /// a pipe of 4 KiB segments from it. A leader answers a whole commit or read-index batch at
    /// once, so hundreds of calls hold such arrays at the same moment, at the node (its forwarded
    /// calls, its request bodies) and at a client; with 32 per core most rents then miss and
    /// allocate, and the GC's cost per request grows with the concurrency (docs/benchmarks.md,
    /// "Cost per request"). The pool makes no array before a burst asks for it and drops those
    /// left unused for a while at full collections. A value already in the environment is kept.
    /// Also run by RaftPS.Bench, whose client is such a client.
    /// </summary>
    public static void Configure()
    {
        if (Environment.GetEnvironmentVariable(Variable) is null)
            Environment.SetEnvironmentVariable(Variable, ArraysPerPartition.ToString(CultureInfo.InvariantCulture));
    }
}
