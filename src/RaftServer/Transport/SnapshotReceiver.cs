using System.Diagnostics;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using RaftServer.Cluster;
using RaftServer.Consensus;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>
/// The follower's side of InstallSnapshot: checks each chunk of the leader's stream, writes it to
/// an <see cref="ISnapshotUpload"/> as it arrives (never more than one chunk in memory), and once
/// the whole file is in and verified posts one Snapshot message carrying the upload's handle to
/// the node loop. Anything unexpected (a gap, a repeat, a wrong length, suspension, the caller
/// going away) discards the upload and ends the call with a gRPC status; the leader restarts
/// the transfer from the beginning. Its dependencies are plain delegates so it runs without a
/// node loop (tests); <see cref="PeerService"/> binds them to the loop.
/// Before anything is stored, the header must name this node's cluster (when both sides know
/// theirs), announce no more than <see cref="SnapshotUploadGate.MaxBytes"/>, and come from a peer
/// with no other upload in progress (docs/security.md, "Snapshot uploads"). A node that knows no
/// cluster id yet takes the leader's with a snapshot that verified.
/// </summary>
public sealed class SnapshotReceiver(
    int self,
    Func<int, bool> isMember,
    Func<bool> isSuspended,
    Action<List<Message>> post,
    ISnapshotSink? sink,
    ILogger logger,
    ClusterIdentity? identity = null,
    SnapshotUploadGate? gate = null,
    int? certifiedSender = null)
{
    /// <summary>Largest chunk accepted: gRPC's default message limit, so memory stays bounded
    /// whatever the server's own limit is (the leader sends <see cref="SnapshotSender.DefaultChunkBytes"/>).</summary>
    public const int MaxChunkBytes = 4 << 20;
    /// <summary>The snapshot service's gRPC message limit: a chunk and the header riding on the
    /// first one (the configuration: members and removed ids), whatever the client limit is.</summary>
    public const int MaxMessageBytes = MaxChunkBytes + (1 << 20);

    public async Task<P.SnapshotAck> ReceiveAsync(IAsyncStreamReader<P.SnapshotChunk> chunks, CancellationToken ct)
    {
        // Until the host registers a sink this node cannot take snapshots; say so plainly.
        if (sink is null) throw Fail(StatusCode.Unimplemented, "this node has no snapshot store");
        if (isSuspended()) throw Fail(StatusCode.Unavailable, "the node is suspended");
        if (!await MoveNext(chunks, ct)) throw Fail(StatusCode.InvalidArgument, "the stream ended before its first chunk");
        var first = chunks.Current;
        var header = first.Header ?? throw Fail(StatusCode.InvalidArgument, "the first chunk has no header");
        SnapshotMetadata meta;
        try
        {
            meta = Validate(header);
        }
        catch (RpcException e)
        {
            // A misconfigured or foreign sender: worth a line, since it never stops on its own.
            // A leader repeats the refused call each time it retries: one line a minute per sender and reason.
            var held = 0;
            if (gate is null || gate.Refusals.Allow($"{header.From} {e.StatusCode}", out held))
                logger.LogWarning("Refused a snapshot from node {From}: {Error}{Held}", header.From, e.Status.Detail,
                    held > 0 ? $" ({held} more in the last minute)" : "");
            throw;
        }
        // One upload per peer: a newer one cancels the one in progress (it may have gone silent).
        using var place = gate?.Enter(header.From);
        using var replaced = CancellationTokenSource.CreateLinkedTokenSource(ct, place?.Cancelled ?? CancellationToken.None);
        return await ReceiveAsync(chunks, first, header, meta, replaced.Token);
    }

    private async Task<P.SnapshotAck> ReceiveAsync(IAsyncStreamReader<P.SnapshotChunk> chunks, P.SnapshotChunk first, P.SnapshotHeader header,
        SnapshotMetadata meta, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(sink);

        var clock = Stopwatch.StartNew();
        long received = 0;
        try
        {
            object handle;
            using (var upload = sink.BeginUpload(meta, header.ClusterId))
            {
                var chunk = first;
                var isFirst = true;
                while (true)
                {
                    // Suspended mid-transfer: behave as a paused node would, answer nothing more.
                    if (isSuspended()) throw Fail(StatusCode.Unavailable, "the node is suspended");
                    CheckChunk(chunk, received, header.TotalLength, isFirst);
                    isFirst = false;
                    upload.Write(chunk.Data.Span);
                    received += chunk.Data.Length;
                    if (chunk.Done) break;
                    if (!await MoveNext(chunks, ct))
                        throw Fail(StatusCode.InvalidArgument, $"the stream ended at {received} of {header.TotalLength} bytes, before its last chunk");
                    chunk = chunks.Current;
                }
                if (received != header.TotalLength)
                    throw Fail(StatusCode.InvalidArgument, $"the last chunk ends at {received}, the header says {header.TotalLength} bytes");
                try
                {
                    handle = upload.Complete();
                }
                catch (InvalidDataException e)
                {
                    throw Fail(StatusCode.DataLoss, $"the snapshot is damaged: {e.Message}");
                }
            }
            // Only now, with the data complete and durable, may the core see the snapshot: it
            // may install it at once (Message.Snapshot's contract).
            post([new Message
            {
                Type = MessageType.Snapshot, From = header.From, To = header.To, Term = header.Term,
                Index = meta.Index, LogTerm = meta.Term, Snapshot = meta, SnapshotData = handle,
            }]);
            logger.LogInformation("Received snapshot {Index} (term {Term}) from node {From}: {Bytes} bytes in {Ms} ms",
                meta.Index, meta.Term, header.From, received, clock.ElapsedMilliseconds);
            return new P.SnapshotAck { Received = received };
        }
        catch (RpcException e)
        {
            logger.LogWarning("Discarded snapshot {Index} from node {From} after {Bytes} bytes: {Error}",
                meta.Index, header.From, received, e.Status.Detail);
            throw;
        }
        catch (OperationCanceledException)
        {
            // The leader gave up (deadline, newer snapshot, lost leadership) or this node is stopping.
            logger.LogInformation("Discarded snapshot {Index} from node {From} after {Bytes} bytes: the transfer was cancelled",
                meta.Index, header.From, received);
            throw Fail(StatusCode.Cancelled, "the transfer was cancelled");
        }
        catch (Exception e)
        {
            // The sink failed (disk full, I/O error) or the connection broke: the upload is already
            // disposed (discarded); answer a status rather than let the server log an unhandled error.
            logger.LogWarning("Discarded snapshot {Index} from node {From} after {Bytes} bytes: {Error}",
                meta.Index, header.From, received, e.Message);
            throw Fail(StatusCode.Internal, $"storing the snapshot failed: {e.Message}");
        }
    }

    private SnapshotMetadata Validate(P.SnapshotHeader h)
    {
        if (h.To != self) throw Fail(StatusCode.InvalidArgument, $"the snapshot is addressed to node {h.To}, this is node {self}");
        if (h.From == self || !isMember(h.From)) throw Fail(StatusCode.PermissionDenied, $"node {h.From} is not a peer of this node");
        if (certifiedSender is { } certified && h.From != certified)
            throw Fail(StatusCode.PermissionDenied, $"the snapshot says it is from node {h.From}, and its peer TLS certificate names node {certified}");
        if (identity is not null && !identity.Accepts(h.ClusterId))
            throw Fail(StatusCode.PermissionDenied,
                $"node {h.From} belongs to cluster {ClusterIdentity.Format(h.ClusterId)}, this node to cluster {identity}");
        if (gate is not null && h.TotalLength > gate.MaxBytes)
            throw Fail(StatusCode.ResourceExhausted,
                $"the snapshot is {h.TotalLength} bytes, more than this node takes (--max-snapshot-bytes {gate.MaxBytes})");
        if (h.Term < 1 || h.SnapshotIndex < 1 || h.SnapshotTerm < 1 || h.SnapshotTerm > h.Term || h.TotalLength < 0
            || h.Term > MessageMapper.MaxTermOrIndex || h.SnapshotIndex > MessageMapper.MaxTermOrIndex)
            throw Fail(StatusCode.InvalidArgument,
                $"bad snapshot header: term {h.Term}, index {h.SnapshotIndex}, snapshot term {h.SnapshotTerm}, length {h.TotalLength}");
        Configuration configuration;
        try
        {
            configuration = h.Configuration.IsEmpty ? Configuration.FromVoters(h.Members) : Configuration.Decode(h.Configuration.Span);
        }
        catch (Exception e) when (e is InvalidDataException or ArgumentException)
        {
            throw Fail(StatusCode.InvalidArgument, $"bad snapshot header: the configuration cannot be read: {e.Message}");
        }
        return new SnapshotMetadata(h.SnapshotIndex, h.SnapshotTerm, configuration);
    }

    /// <summary>Chunks must tile the file exactly: any loss, repeat or reordering shows as a wrong offset.</summary>
    private static void CheckChunk(P.SnapshotChunk c, long received, long total, bool isFirst)
    {
        if (!isFirst && c.Header is not null) throw Fail(StatusCode.InvalidArgument, $"a header in the chunk at offset {c.Offset}");
        if (c.Offset != received) throw Fail(StatusCode.InvalidArgument, $"expected the chunk at offset {received}, got offset {c.Offset}");
        if (c.Data.Length > MaxChunkBytes) throw Fail(StatusCode.InvalidArgument, $"a chunk of {c.Data.Length} bytes (at most {MaxChunkBytes})");
        if (received + c.Data.Length > total) throw Fail(StatusCode.InvalidArgument, $"the chunk at offset {c.Offset} runs past the {total} bytes announced");
    }

    private static async Task<bool> MoveNext(IAsyncStreamReader<P.SnapshotChunk> chunks, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        return await chunks.MoveNext(ct);
    }

    private static RpcException Fail(StatusCode code, string detail) => new(new Status(code, detail));
}
