using Grpc.Core;
using Microsoft.Extensions.Logging;
using RaftServer.Cluster;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>
/// The peer service's gRPC side: InstallSnapshot only (Raft messages arrive on plain TCP peer
/// connections, <see cref="PeerSortingListenerFactory"/>). Each call runs a
/// <see cref="SnapshotReceiver"/> bound to the node through <see cref="IPeerEndpoint"/> and the
/// <see cref="Membership"/>; the snapshot store comes from DI as an <see cref="ISnapshotSink"/>
/// (optional: without one this node refuses snapshots with Unimplemented). With peer TLS
/// (<paramref name="handshake"/>'s <see cref="PeerHandshake.Tls"/>) a snapshot is taken only over a
/// peer TLS connection, from the node its certificate names.
/// </summary>
public sealed class PeerService(IPeerEndpoint node, Membership membership, Microsoft.Extensions.Hosting.IHostApplicationLifetime lifetime,
    ILoggerFactory loggers, ISnapshotSink? snapshots = null, SnapshotUploadGate? uploads = null, PeerHandshake? handshake = null) : P.RaftPeer.RaftPeerBase
{
    public override async Task<P.SnapshotAck> InstallSnapshot(IAsyncStreamReader<P.SnapshotChunk> requestStream, ServerCallContext context)
    {
        int? certified = null;
        if (handshake?.Tls is not null)
        {
            if (context.GetHttpContext().Features.Get<IPeerTlsFeature>() is not { } peer)
                throw new RpcException(new Status(StatusCode.PermissionDenied, "this node takes snapshots over peer TLS only (--peer-cert-file)"));
            certified = peer.NodeId;
        }
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
        var receiver = new SnapshotReceiver(membership.Self, membership.IsPeer, () => node.Suspended,
            node.Deliver, snapshots, loggers.CreateLogger("RaftServer.Transport"), membership.Identity, uploads, certified);
        return await receiver.ReceiveAsync(requestStream, stopping.Token);
    }
}
