using Grpc.Core;
using Microsoft.Extensions.Logging;
using RaftServer.Consensus;
using RaftServer.Hosting;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>
/// The server side of the peer stream: each batch is mapped to core messages on the gRPC thread
/// and posted to the node loop as one event. While suspended, streams are refused (Unavailable).
/// InstallSnapshot is delegated to a <see cref="SnapshotReceiver"/> bound to the loop; the
/// snapshot store comes from DI as an <see cref="ISnapshotSink"/> (optional: without one this
/// node refuses snapshots with Unimplemented, and everything else works as before).
/// </summary>
public sealed class PeerService(NodeLoop loop, Microsoft.Extensions.Hosting.IHostApplicationLifetime lifetime,
    ILoggerFactory loggers, ISnapshotSink? snapshots = null) : P.RaftPeer.RaftPeerBase
{
    public override async Task<P.StreamClosed> Stream(IAsyncStreamReader<P.MessageBatch> requestStream, ServerCallContext context)
    {
        if (loop.View.Suspended) throw Suspended();
        var members = loop.Config;
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
        while (await MoveNext(requestStream, stopping.Token))
        {
            if (loop.View.Suspended) throw Suspended();
            var batch = requestStream.Current;
            if (members.Find(batch.From) is null) continue;
            var messages = new List<Message>(batch.Messages.Count);
            foreach (var p in batch.Messages)
            {
                if (p.To != loop.Id || p.From != batch.From) continue;
                if (MessageMapper.FromProto(p) is { } m) messages.Add(m);
            }
            if (messages.Count > 0) loop.Post(messages);
        }
        return new P.StreamClosed();
    }

    public override async Task<P.SnapshotAck> InstallSnapshot(IAsyncStreamReader<P.SnapshotChunk> requestStream, ServerCallContext context)
    {
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
        var receiver = new SnapshotReceiver(loop.Id, id => loop.Config.Find(id) is not null, () => loop.View.Suspended,
            messages => loop.Post(messages), snapshots, loggers.CreateLogger("RaftServer.Transport"));
        return await receiver.ReceiveAsync(requestStream, stopping.Token);
    }

    private static async Task<bool> MoveNext(IAsyncStreamReader<P.MessageBatch> stream, CancellationToken ct)
    {
        try
        {
            return await stream.MoveNext(ct);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            return false; // the peer went away (a killed peer aborts the connection) or this node is stopping
        }
    }

    private static RpcException Suspended() => new(new Status(StatusCode.Unavailable, "the node is suspended"));
}
