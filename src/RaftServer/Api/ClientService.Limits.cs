using Grpc.Core;
using RaftServer.Hosting;

namespace RaftServer.Api;

/// <summary>The answers of admission control (<see cref="Admission"/>): RESOURCE_EXHAUSTED with a
/// retry hint, distinct from the request-size refusal gRPC gives itself (no hint: retrying the
/// same request cannot help).</summary>
public sealed partial class ClientService
{
    /// <summary>gRPC's standard server push-back trailer (gRPC retry design A6): how many ms to wait
    /// before a retry. The module retries a RESOURCE_EXHAUSTED that carries it, with back-off.</summary>
    public const string RetryPushbackTrailer = "grpc-retry-pushback-ms";

    private static RpcException Overloaded(string reason) =>
        new(new Status(StatusCode.ResourceExhausted, reason),
            new Metadata { { RetryPushbackTrailer, Admission.RetryPushbackMs.ToString(System.Globalization.CultureInfo.InvariantCulture) } });

    /// <summary>A read that was refused or failed: RESOURCE_EXHAUSTED when admission refused it, else UNAVAILABLE.</summary>
    private RpcException ReadFailed(ReadOutcome outcome, string fallback) =>
        outcome.Code == OutcomeCode.ResourceExhausted ? Overloaded(outcome.Reason ?? fallback) : Unavailable(outcome.Reason ?? fallback, outcome.LeaderHint);
}
