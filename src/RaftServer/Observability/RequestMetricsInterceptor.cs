using System.Collections.Concurrent;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace RaftServer.Observability;

/// <summary>
/// Counts each call of the client service (<c>raftps.RaftClient</c>) by method and final gRPC status
/// (<see cref="NodeMetrics.ClientRequest"/>). Peer calls (snapshots) are not counted. A call whose
/// handler throws anything but an <see cref="RpcException"/> is counted as gRPC maps it (Unknown,
/// or Cancelled for a cancellation) and the exception goes on unchanged.
/// </summary>
public sealed class RequestMetricsInterceptor(NodeMetrics metrics) : Interceptor
{
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
            code = CodeOf(e);
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
            code = CodeOf(e);
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
            code = CodeOf(e);
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
            code = CodeOf(e);
            throw;
        }
        finally
        {
            Count(context.Method, code);
        }
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
