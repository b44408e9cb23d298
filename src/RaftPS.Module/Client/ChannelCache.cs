using System.Collections.Concurrent;
using Grpc.Net.Client;
using RaftPS.Protocol;

namespace RaftPS.Client;

/// <summary>One gRPC channel per endpoint, shared by every connection and runspace of the process.</summary>
internal static class ChannelCache
{
    private static readonly ConcurrentDictionary<RaftEndpoint, RaftClient.RaftClientClient> Clients = new();

    public static RaftClient.RaftClientClient Get(RaftEndpoint endpoint) =>
        Clients.GetOrAdd(endpoint, static e =>
        {
            var handler = new SocketsHttpHandler
            {
                ConnectTimeout = TimeSpan.FromSeconds(2),
                EnableMultipleHttp2Connections = true,
                PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            };
            var channel = GrpcChannel.ForAddress($"http://{e}", new GrpcChannelOptions
            {
                HttpHandler = handler,
                MaxReceiveMessageSize = 64 * 1024 * 1024,
                MaxSendMessageSize = 64 * 1024 * 1024,
            });
            return new RaftClient.RaftClientClient(channel);
        });
}
