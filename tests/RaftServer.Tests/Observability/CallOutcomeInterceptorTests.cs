using Grpc.Core;
using RaftServer.Observability;
using RaftServer.Tests.Api.Security;
using RaftServer.Tests.Storage;

namespace RaftServer.Tests.Observability;

/// <summary>What the node logs when a call's handler throws (the log Grpc.AspNetCore's own handler log is filtered in favour of).</summary>
public sealed class CallOutcomeInterceptorTests
{
    private const string Method = "/raftps.RaftClient/Set";

    private static async Task<(ListLogger Log, Exception Thrown)> Throw(Exception e, CancellationToken cancellation = default)
    {
        var log = new ListLogger();
        using var metrics = new NodeMetrics();
        var interceptor = new CallOutcomeInterceptor(metrics, log);
        var thrown = await Assert.ThrowsAnyAsync<Exception>(() => interceptor.UnaryServerHandler<string, string>("request",
            new TestCallContext(Method, new Metadata(), cancellation: cancellation), (_, _) => throw e));
        return (log, thrown);
    }

    [Fact]
    public async Task A_handlers_unexpected_exception_is_logged_as_an_error_naming_the_call_and_passed_on()
    {
        var bug = new InvalidOperationException("a bug");
        var (log, thrown) = await Throw(bug);
        Assert.Same(bug, thrown);
        Assert.Equal([$"Error:The call {Method} failed"], log.Lines);
    }

    [Fact]
    public async Task An_RpcException_is_the_handlers_answer_not_a_failure()
    {
        var (log, _) = await Throw(new RpcException(new Status(StatusCode.Unavailable, "no leader")));
        Assert.Empty(log.Lines);
    }

    [Fact]
    public async Task A_call_the_client_gave_up_is_not_logged_but_a_cancellation_the_client_did_not_ask_for_is()
    {
        using var abandoned = new CancellationTokenSource();
        await abandoned.CancelAsync();
        Assert.Empty((await Throw(new IOException("The client reset the request stream."), abandoned.Token)).Log.Lines);
        Assert.Empty((await Throw(new OperationCanceledException(), abandoned.Token)).Log.Lines);
        Assert.Equal([$"Error:The call {Method} failed"], (await Throw(new IOException("the disk"))).Log.Lines);
    }
}
