using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RaftServer.Cluster;
using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.Transport;
using P = RaftPS.Protocol;

namespace RaftServer.Tests.Transport;

/// <summary>
/// One follower's peer endpoint without a node loop: a real Kestrel h2c server on a free loopback
/// port (configured as ServerHost configures it) whose InstallSnapshot runs a
/// <see cref="SnapshotReceiver"/> posting into <see cref="Posted"/>, and whose peer connections
/// (<see cref="PeerSortingListenerFactory"/>, read with <see cref="PeerFrameReader"/>) record batches. Members are nodes 1 to 3; this node is <see cref="Self"/>.
/// </summary>
internal sealed class SnapshotTestHost : IAsyncDisposable
{
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private readonly WebApplication _app;

    public int Self { get; }
    public int Port { get; }
    public FakeSnapshotSink Sink { get; }
    public volatile bool Suspended;
    /// <summary>Every list the receiver posted to "the loop".</summary>
    public ConcurrentQueue<List<Message>> Posted { get; } = new();
    /// <summary>Non-empty batches that arrived on the ordinary peer connection.</summary>
    public Channel<P.MessageBatch> Batches { get; } = Channel.CreateUnbounded<P.MessageBatch>();
    public SnapshotReceiver Receiver { get; }
    /// <summary>This node's cluster id (unknown unless the test gave one).</summary>
    public ClusterIdentity Identity { get; }
    /// <summary>The node ids of the peer connections handed over, in order.</summary>
    public ConcurrentQueue<int> AcceptedPeers { get; } = new();

    private SnapshotTestHost(WebApplication app, int self, int port, FakeSnapshotSink sink, TestLogger logger, ClusterIdentity identity,
        SnapshotUploadGate? gate)
    {
        _app = app;
        Self = self;
        Port = port;
        Sink = sink;
        Identity = identity;
        Receiver = new SnapshotReceiver(self, id => id is >= 1 and <= 3, () => Suspended, Posted.Enqueue, sink, logger, identity, gate);
    }

    public NodeAddress Address => new(Self, "127.0.0.1", Port);

    public static async Task<SnapshotTestHost> StartAsync(FakeSnapshotSink sink, TestLogger logger, int self = 2,
        ulong clusterId = ClusterIdentity.Unknown, SnapshotUploadGate? gate = null, Func<int, bool>? removed = null)
    {
        var identity = new ClusterIdentity(clusterId);
        var handshake = new PeerHandshake(self, identity, removed ?? (_ => false), logger);
        // The service finds the host through DI; the host exists only once the port is known.
        var holder = new HostHolder();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(1));
        builder.Services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = 64 << 20;
            o.MaxSendMessageSize = null;
        });
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.Http2.InitialConnectionWindowSize = 8 << 20;
            k.Limits.Http2.InitialStreamWindowSize = StreamWindowBytes;
            k.Limits.MinRequestBodyDataRate = null;
            k.Listen(IPAddress.Loopback, 0, o => o.Protocols = HttpProtocols.Http2);
        });
        // As ServerHost: peer message connections share the port (PeerSortingListenerFactory); here
        // a thread per connection reads them, as the node loop would, into Batches.
        builder.Services.AddSingleton<IConnectionListenerFactory>(new PeerSortingListenerFactory(
            () => holder.Host?.Suspended ?? false, (socket, peer) =>
            {
                holder.Host?.AcceptedPeers.Enqueue(peer);
                ReadPeer(socket, holder, logger);
            }, handshake, logger, NullLogger.Instance));
        builder.Services.AddSingleton(holder);
        var app = builder.Build();
        app.MapGrpcService<TestPeerService>();
        await app.StartAsync();
        var port = new Uri(app.Urls.Single()).Port;
        holder.Host = new SnapshotTestHost(app, self, port, sink, logger, identity, gate);
        return holder.Host;
    }

    private static void ReadPeer(Socket socket, HostHolder holder, TestLogger logger)
    {
        var thread = new Thread(() =>
        {
            var reader = new PeerFrameReader(initialBytes: 16);
            try
            {
                while (reader.Receive(socket, batch =>
                       {
                           if (batch.Messages.Count > 0) holder.Host!.Batches.Writer.TryWrite(batch);
                       })) { }
            }
            catch (InvalidDataException e)
            {
                logger.Log(LogLevel.Warning, default, $"Closed a peer connection: {e.Message}", null, (m, _) => m);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // the test closed it
            }
            socket.Dispose();
        });
        thread.IsBackground = true;
        thread.Start();
    }

    /// <summary>As ServerHost: the per-stream HTTP/2 window bounds what is in flight to a stalled receiver.</summary>
    public const int StreamWindowBytes = 4 << 20;

    public P.RaftPeer.RaftPeerClient Client(out IDisposable channel)
    {
        var c = Grpc.Net.Client.GrpcChannel.ForAddress($"http://127.0.0.1:{Port}");
        channel = c;
        return new P.RaftPeer.RaftPeerClient(c);
    }

    public async ValueTask DisposeAsync()
    {
        Sink.Release(); // a stalled upload would hold the server's shutdown
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    internal sealed class HostHolder
    {
        public SnapshotTestHost? Host;
    }

    internal sealed class TestPeerService(HostHolder holder) : P.RaftPeer.RaftPeerBase
    {
        public override Task<P.SnapshotAck> InstallSnapshot(IAsyncStreamReader<P.SnapshotChunk> requestStream, ServerCallContext context) =>
            holder.Host!.Receiver.ReceiveAsync(requestStream, context.CancellationToken);
    }
}

/// <summary>Collects log lines (from any thread) so a test can print or inspect them.</summary>
internal sealed class TestLogger : ILogger
{
    public ConcurrentQueue<string> Lines { get; } = new();
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(LogLevel logLevel) => true;
    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        Lines.Enqueue($"{logLevel}: {formatter(state, exception)}");
}
