using Grpc.Core;
using Microsoft.AspNetCore.Http;

namespace RaftServer.Tests.Api.Security;

/// <summary>
/// A gRPC call context for checking <see cref="RaftServer.Api.Security.ClientAccess"/> without a
/// server; with <paramref name="http"/>, GetHttpContext finds it (through UserState, as
/// Grpc.AspNetCore looks for it), so the connection's features can be set.
/// </summary>
internal sealed class TestCallContext(string method, Metadata headers, HttpContext? http = null, CancellationToken cancellation = default) : ServerCallContext
{
    private readonly Dictionary<object, object> _state = http is null ? new() : new() { ["__HttpContext"] = http };
    protected override string MethodCore => method;
    protected override string HostCore => "localhost";
    protected override string PeerCore => "ipv4:127.0.0.1:1";
    protected override DateTime DeadlineCore => DateTime.MaxValue;
    protected override Metadata RequestHeadersCore => headers;
    protected override CancellationToken CancellationTokenCore => cancellation;
    protected override Metadata ResponseTrailersCore { get; } = new();
    protected override Status StatusCore { get; set; }
    protected override WriteOptions? WriteOptionsCore { get; set; }
    protected override AuthContext AuthContextCore => new(null, new Dictionary<string, List<AuthProperty>>());
    protected override IDictionary<object, object> UserStateCore => _state;
    protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) => throw new NotSupportedException();
    protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
}
