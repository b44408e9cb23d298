using Grpc.Core;
using Microsoft.Extensions.Logging;
using RaftServer.Hosting;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>
/// The peer service's gRPC side: InstallSnapshot only (Raft messages arrive on plain TCP peer
/// connections, <see cref="PeerSortingListenerFactory"/>). It is delegated to a <see cref="SnapshotReceiver"/>
/// bound to the loop; the snapshot store comes from DI as an <see cref="ISnapshotSink"/> (optional: without one this
/// node refuses snapshots with Unimplemented, and everything else works as before).
/// </summary>
public sealed class PeerService(NodeLoop loop, Microsoft.Extensions.Hosting.IHostApplicationLifetime lifetime,
    ILoggerFactory loggers, ISnapshotSink? snapshots = null) : P.RaftPeer.RaftPeerBase
{
    public override async Task<P.SnapshotAck> InstallSnapshot(IAsyncStreamReader<P.SnapshotChunk> requestStream, ServerCallContext context)
    {
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
        var receiver = new SnapshotReceiver(loop.Id, id => loop.Config.Find(id) is not null, () => loop.View.Suspended,
            messages => loop.Post(messages), snapshots, loggers.CreateLogger("RaftServer.Transport"));
        return await receiver.ReceiveAsync(requestStream, stopping.Token);
    }
}
