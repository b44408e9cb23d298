using RaftServer.Api;

namespace RaftServer.Hosting;

/// <summary>
/// What one node takes from its clients at most (docs/security.md, "Request limits and admission
/// control"): the size of a request, the HTTP/2 connections, streams and headers, and how many
/// writes and reads it holds at once. Every default leaves the benchmark's heaviest load (1024
/// concurrent clients) well inside it.
/// </summary>
public sealed record ClientLimits
{
    /// <summary>Room for the largest legal request, a SetMany of <see cref="RequestValidation.MaxBatchBytes"/>
    /// (4 MiB), and a margin so that one slightly over it is told so by SetMany's own check.</summary>
    public const int DefaultMaxRequestBytes = RequestValidation.MaxBatchBytes + (64 << 10);

    public static readonly ClientLimits Default = new();

    /// <summary>The client service's largest message (gRPC refuses a larger one RESOURCE_EXHAUSTED from its
    /// length prefix, before reading its body).</summary>
    public int MaxRequestBytes { get; init; } = DefaultMaxRequestBytes;
    /// <summary>Client writes (each item of a SetMany counts) queued for the loop or proposed and not yet answered.</summary>
    public int MaxPendingWrites { get; init; } = 10_000;
    /// <summary>Linearizable reads (and lease keep-alives) queued for the loop or waiting for their read index or apply.</summary>
    public int MaxPendingReads { get; init; } = 10_000;
    /// <summary>Kestrel's concurrent HTTP/2 connections of clients (and, without peer TLS, of calls forwarded by followers and snapshot uploads: plain HTTP/2 like a client's).</summary>
    public long MaxConnections { get; init; } = 4096;
    /// <summary>
    /// Concurrent calls on one HTTP/2 connection. Kestrel serves one connection's frames on one
    /// reader and one writer, so hundreds of calls on a connection cost the node (and the client)
    /// more per call than the same calls spread over more connections; a .NET client
    /// (Grpc.Net.Client's own handler, the module, followers forwarding) opens another connection
    /// when this many calls are in flight, and other clients queue the rest. At 1,024 calls in
    /// flight 128 gave 9-26 % more gets at 13-26 % less server CPU per get than 1,000
    /// (docs/benchmarks.md, "Calls per connection").
    /// </summary>
    public int MaxStreamsPerConnection { get; init; } = 128;
    /// <summary>The request headers of one call, in all (and of any one header).</summary>
    public int MaxHeaderBytes { get; init; } = 32 << 10;
}
