using System.Collections.Concurrent;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Logging;

namespace RaftServer.Observability;

/// <summary>
/// Counts each call of the client service (<c>raftps.RaftClient</c>) by method and final gRPC status
/// (<see cref="NodeMetrics.ClientRequest"/>); peer calls (snapshots) are not counted. A call of any
/// service whose handler throws anything but an <see cref="RpcException"/> is counted as gRPC maps it
/// (Unknown, or Cancelled for a cancellation), logged at error level with its stack trace (a bug of
/// this node) unless the caller had given the call up, and the exception goes on unchanged.
/// This is the node's log of handler failures: Grpc.AspNetCore's own ("Error when executing service
/// method", category <see cref="GrpcHandlerCategory"/>) is filtered out because it also fires, at
/// error level, when a client resets its call while the request is being read (a follower giving up
/// a forwarded call on a lossy link): Kestrel fails the read before it signals the abort, so gRPC
/// cannot tell that from a failure (docs/server.md, "Logging"). Seen in the network soak, under load;
/// not reproduced on an idle machine, where the abort is signalled first.
/// </summary>
/// <param name="log">Where handler failures go (<see cref="Category"/>).</param>
public sealed class CallOutcomeInterceptor(NodeMetrics metrics, ILogger log) : Interceptor
{
    public const string Category = "RaftServer.Calls";
    public const string GrpcHandlerCategory = "Grpc.AspNetCore.Server.ServerCallHandler";

    private const string ClientServicePrefix = "/raftps.RaftClient/";
    private static readonly string[] CodeNames = Enum.GetValues<StatusCode>().Select(c => c.ToString()).ToArray();
    private readonly ConcurrentDictionary<string, (string Name, RequestKind Kind)?> _methods = new(StringComparer.OrdinalIgnoreCase); // the routing ignores case: so do the keys (bounded by the methods)

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        var code = StatusCode.OK;
        try
        {
            return await continuation(request, context);
        }
        catch (Exception e)
        {
            code = Failed(e, context);
            throw;
        }
        finally
        {
            Count(context.Method, code);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var code = StatusCode.OK;
        try
        {
            await continuation(request, responseStream, context);
        }
        catch (Exception e)
        {
            code = Failed(e, context);
            throw;
        }
        finally
        {
            Count(context.Method, code);
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var code = StatusCode.OK;
        try
        {
            return await continuation(requestStream, context);
        }
        catch (Exception e)
        {
            code = Failed(e, context);
            throw;
        }
        finally
        {
            Count(context.Method, code);
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var code = StatusCode.OK;
        try
        {
            await continuation(requestStream, responseStream, context);
        }
        catch (Exception e)
        {
            code = Failed(e, context);
            throw;
        }
        finally
        {
            Count(context.Method, code);
        }
    }

    private StatusCode Failed(Exception e, ServerCallContext context)
    {
        if (e is not RpcException && !(context.CancellationToken.IsCancellationRequested && e is OperationCanceledException or IOException))
            log.LogError(e, "The call {Method} failed", context.Method);
        return CodeOf(e);
    }

    private static StatusCode CodeOf(Exception e) => e switch
    {
        RpcException r => r.StatusCode,
        OperationCanceledException => StatusCode.Cancelled,
        _ => StatusCode.Unknown,
    };

    private void Count(string method, StatusCode code)
    {
        if (_methods.GetOrAdd(method, Classify) is not { } m) return;
        metrics.ClientRequest(m.Name, (uint)code < CodeNames.Length ? CodeNames[(int)code] : code.ToString(), m.Kind);
    }

    private static (string Name, RequestKind Kind)? Classify(string method)
    {
        if (!method.StartsWith(ClientServicePrefix, StringComparison.OrdinalIgnoreCase)) return null;
        if (Api.Security.ClientMethodRoles.CanonicalName(method[ClientServicePrefix.Length..]) is not { } name) return null;
        var kind = name switch
        {
            "Get" or "Range" => RequestKind.Read,
            "Set" or "Delete" or "SetMany" => RequestKind.Write,
            _ => RequestKind.Other,
        };
        return (name, kind);
    }
}
