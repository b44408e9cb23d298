using System.Collections.Concurrent;
using System.Net.Http;
using Grpc.Net.Client;
using RaftPS.Protocol;

namespace RaftPS.Client;

/// <summary>
/// One gRPC channel per endpoint and security settings (<see cref="ConnectionSecurity.Identity"/>:
/// connections made with the same settings share it), for every connection and runspace of the process.
/// </summary>
internal static class ChannelCache
{
    private static readonly ConcurrentDictionary<(RaftEndpoint, string?), RaftClient.RaftClientClient> Clients = new();

    public static RaftClient.RaftClientClient Get(RaftEndpoint endpoint, ConnectionSecurity? security = null) =>
        Clients.GetOrAdd((endpoint, security?.Identity), static (key, security) =>
        {
            var e = key.Item1;
            var handler = new SocketsHttpHandler
            {
                ConnectTimeout = TimeSpan.FromSeconds(2),
                EnableMultipleHttp2Connections = true,
                PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            };
            var channel = GrpcChannel.ForAddress($"{(security?.UseTls == true ? "https" : "http")}://{e}", new GrpcChannelOptions
            {
                HttpHandler = security is null ? handler : security.Handler(handler),
                MaxReceiveMessageSize = 64 * 1024 * 1024,
                MaxSendMessageSize = 64 * 1024 * 1024,
            });
            return new RaftClient.RaftClientClient(channel);
        }, security);

    /// <summary>How many channels the process holds (for tests).</summary>
    internal static int Count => Clients.Count;
}
