using Google.Protobuf;
using Grpc.Core;
using RaftServer.Hosting;
using RaftServer.StateMachine;
using P = RaftPS.Protocol;

namespace RaftServer.Api;

/// <summary>
/// The client service's coordination calls (docs/coordination.md): conditional writes, watches,
/// leases. Writes and lease grants and revokes go through the log as every write does (forwarded
/// to the leader, exactly once per client session); a keep-alive renews the leader's in-memory
/// clock once the leader has confirmed it still leads; a watch streams this node's window of
/// applied history.
/// </summary>
public sealed partial class ClientService
{
    /// <summary>Events per watch reply at most (a reply never splits a revision, so it may hold more).</summary>
    public const int MaxEventsPerReply = 1000;
    /// <summary>Bytes of keys and values per watch reply, about.</summary>
    public const int MaxBytesPerReply = 1 << 20;
    /// <summary>An idle watch tells its client how far it has read at most this often.</summary>
    public static readonly TimeSpan WatchProgressInterval = TimeSpan.FromSeconds(1);

    private const string LeaseNotFoundDetail = "the lease does not exist (it expired or was revoked)";

    private static RpcException LeaseNotFound() => new(new Status(StatusCode.NotFound, LeaseNotFoundDetail));

    public override async Task<P.WriteReply> Write(P.WriteRequest request, ServerCallContext context)
    {
        RequestValidation.Key(request.Key);
        var condition = Condition(request);
        byte[] data;
        switch (request.Op)
        {
            case P.WriteOp.WritePut:
                RequestValidation.Value(request.Value.Length);
                RequestValidation.Lease(request.Lease);
                data = Command.EncodePut(NowMs(), request.ClientId, request.Sequence, request.Key, request.Value.Span, condition, request.Lease);
                break;
            case P.WriteOp.WriteDelete:
                if (request.Lease != 0) throw RequestValidation.Invalid("a delete takes no lease");
                if (!request.Value.IsEmpty) throw RequestValidation.Invalid("a delete takes no value");
                data = Command.EncodeRemove(NowMs(), request.ClientId, request.Sequence, request.Key, condition);
                break;
            default:
                throw RequestValidation.Invalid($"unknown write op {(int)request.Op}");
        }
        Log.WriteCommand(_log, request.Op == P.WriteOp.WritePut ? "set" : "delete", request.Key, Describe(condition));
        var result = await WriteAsync(data, request.ClientId, request.Sequence, context,
            static (client, req, headers, deadline, ct) => client.WriteAsync(req, headers, deadline, ct).ResponseAsync, request);
        if (result.Forwarded is { } forwarded) return forwarded;
        var r = result.Local;
        return new P.WriteReply
        {
            Succeeded = r.Status == WriteStatus.Done,
            Index = r.Index,
            Revision = r.Revision,
            KeyRevision = r.KeyRevision,
            Existed = r.Existed,
        };
    }

    private static WriteCondition Condition(P.WriteRequest request)
    {
        switch (request.Compare)
        {
            case P.CompareKind.CompareNone:
                return default;
            case P.CompareKind.CompareModRevision:
                if (request.CompareRevision < 0) throw RequestValidation.Invalid($"the compared revision {request.CompareRevision} is negative");
                return WriteCondition.IfModRevision(request.CompareRevision);
            case P.CompareKind.CompareAbsent:
                return WriteCondition.IfAbsent;
            case P.CompareKind.CompareValue:
                RequestValidation.Value(request.CompareValue.Length);
                return WriteCondition.IfValue(request.CompareValue.ToByteArray());
            default:
                throw RequestValidation.Invalid($"unknown comparison {(int)request.Compare}");
        }
    }

    private static string Describe(WriteCondition c) => c.Kind switch
    {
        ConditionKind.ModRevision => $"revision {c.Revision}",
        ConditionKind.Absent => "absent",
        ConditionKind.Value => "value",
        _ => "always",
    };

    public override async Task<P.LeaseGrantReply> LeaseGrant(P.LeaseGrantRequest request, ServerCallContext context)
    {
        RequestValidation.LeaseTtl(request.TtlSeconds);
        Log.LeaseGrantCommand(_log, request.TtlSeconds);
        var data = Command.EncodeLeaseGrant(NowMs(), request.ClientId, request.Sequence, request.TtlSeconds * 1000);
        var result = await WriteAsync(data, request.ClientId, request.Sequence, context,
            static (client, req, headers, deadline, ct) => client.LeaseGrantAsync(req, headers, deadline, ct).ResponseAsync, request);
        return result.Forwarded ?? new P.LeaseGrantReply { Id = result.Local.Index, TtlSeconds = request.TtlSeconds };
    }

    public override async Task<P.LeaseRevokeReply> LeaseRevoke(P.LeaseRevokeRequest request, ServerCallContext context)
    {
        RequestValidation.LeaseId(request.Id);
        Log.LeaseRevokeCommand(_log, request.Id);
        var data = Command.EncodeLeaseRevoke(NowMs(), request.ClientId, request.Sequence, request.Id, expired: false);
        var result = await WriteAsync(data, request.ClientId, request.Sequence, context,
            static (client, req, headers, deadline, ct) => client.LeaseRevokeAsync(req, headers, deadline, ct).ResponseAsync, request);
        return result.Forwarded ?? new P.LeaseRevokeReply { Found = result.Local.Existed, Revision = result.Local.Revision };
    }

    public override async Task<P.LeaseKeepAliveReply> LeaseKeepAlive(P.LeaseKeepAliveRequest request, ServerCallContext context)
    {
        RequestValidation.LeaseId(request.Id);
        Log.LeaseKeepAliveCommand(_log, request.Id);
        var forwarded = IsForwarded(context);
        if (ForwardTarget(forwarded) is { } leaderId)
            return await ForwardAsync(leaderId, ForwardKeepAlive, request, context);
        var outcome = await WaitAsync(loop.Read(new PendingRead { KeepAliveLease = request.Id }), context);
        switch (outcome.Code)
        {
            case OutcomeCode.Ok:
                return new P.LeaseKeepAliveReply { Found = outcome.Found, TtlSeconds = outcome.LeaseTtlMs / 1000 };
            case OutcomeCode.NotLeader when !forwarded && outcome.LeaderHint != SoftStateNoLeader && outcome.LeaderHint != membership.Self:
                return await ForwardAsync(outcome.LeaderHint, ForwardKeepAlive, request, context);
            default:
                throw ReadFailed(outcome, "the keep-alive could not be confirmed");
        }
    }

    private const int SoftStateNoLeader = RaftServer.Consensus.SoftState.NoLeader;

    private static readonly Func<P.RaftClient.RaftClientClient, P.LeaseKeepAliveRequest, Metadata, DateTime?, CancellationToken, Task<P.LeaseKeepAliveReply>> ForwardKeepAlive =
        static (client, req, headers, deadline, ct) => client.LeaseKeepAliveAsync(req, headers, deadline, ct).ResponseAsync;

    /// <summary>
    /// Streams the window of this node's history for one key or prefix: a created reply, then
    /// whole revisions in order as they are applied, a progress reply (no events, the revision read
    /// up to) when idle for <see cref="WatchProgressInterval"/> after reading further, and, when the
    /// watch ends on the server's side, one canceled reply saying why.
    /// </summary>
    public override async Task Watch(P.WatchRequest request, IServerStreamWriter<P.WatchReply> stream, ServerCallContext context)
    {
        RequestValidation.WatchKey(request.Key, request.Prefix);
        RequestValidation.StartRevision(request.StartRevision);
        Log.WatchCommand(_log, request.Key, request.Prefix ? "*" : "", request.StartRevision);
        CheckAwake();
        if (loop.Watches is not { } hub) throw Unavailable("the node is starting", SoftStateNoLeader);

        Watcher watcher;
        try
        {
            watcher = hub.Open(request.Key, request.Prefix, request.StartRevision);
        }
        catch (WatchCompactedException e)
        {
            await stream.WriteAsync(Canceled(P.WatchCancelReason.WatchCompacted, e.Message, e.CompactedRevision, request.StartRevision - 1, hub));
            return;
        }
        catch (InvalidOperationException e)
        {
            throw new RpcException(new Status(StatusCode.ResourceExhausted, e.Message));
        }

        using (watcher)
        using (var ended = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, watcher.Ended))
        {
            var token = ended.Token;
            var read = new List<WatchedEvent>();
            var sentThrough = watcher.StartRevision - 1;
            var lastReply = DateTime.UtcNow;
            try
            {
                await Send(new P.WatchReply { Created = true, StartRevision = watcher.StartRevision, Revision = sentThrough, NodeRevision = hub.Revision });
                while (true)
                {
                    var changed = watcher.Changed;
                    var r = watcher.Read(read, MaxEventsPerReply, MaxBytesPerReply);
                    if (r.Status == WatchReadStatus.Lost)
                    {
                        var detail = $"revisions from {watcher.NextRevision} on are no longer in this node's window of history (it keeps revisions after {r.CompactedRevision}); read the current state again and watch from its revision + 1";
                        await stream.WriteAsync(Canceled(P.WatchCancelReason.WatchCompacted, detail, r.CompactedRevision, sentThrough, hub), CancellationToken.None);
                        return;
                    }
                    var through = watcher.NextRevision - 1;
                    if (r.Status == WatchReadStatus.Events || (through > sentThrough && DateTime.UtcNow - lastReply >= WatchProgressInterval))
                    {
                        var reply = new P.WatchReply { Revision = through, NodeRevision = hub.Revision };
                        foreach (var e in read) reply.Events.Add(ToProto(e.Change));
                        read.Clear();
                        await Send(reply);
                        sentThrough = through;
                        lastReply = DateTime.UtcNow;
                        continue;
                    }
                    if (through == sentThrough)
                    {
                        await changed.WaitAsync(token);
                        continue;
                    }
                    // Read further than last said, with no event to send: say so once the interval is up.
                    var due = WatchProgressInterval - (DateTime.UtcNow - lastReply);
                    try
                    {
                        await changed.WaitAsync(due > TimeSpan.Zero ? due : TimeSpan.Zero, token);
                    }
                    catch (TimeoutException)
                    {
                    }
                }
            }
            catch (OperationCanceledException) when (watcher.EndReason != WatchEnd.None && !context.CancellationToken.IsCancellationRequested)
            {
                await EndedByNode(watcher, stream, sentThrough, hub);
            }
            catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
            {
                // The client went away.
            }

            async Task Send(P.WatchReply reply)
            {
                watcher.Sending = true;
                try
                {
                    await stream.WriteAsync(reply, token);
                }
                finally
                {
                    watcher.Sending = false;
                }
            }
        }
    }

    /// <summary>The hub ended the watch (suspend, stop, a stuck sender): say why, if the stream still takes it.</summary>
    private static async Task EndedByNode(Watcher watcher, IServerStreamWriter<P.WatchReply> stream, long sentThrough, WatchHub hub)
    {
        var (reason, compacted) = watcher.EndReason switch
        {
            WatchEnd.TooSlow => (P.WatchCancelReason.WatchTooSlow, hub.CompactedRevision),
            WatchEnd.Compacted => (P.WatchCancelReason.WatchCompacted, hub.CompactedRevision),
            _ => (P.WatchCancelReason.WatchNodeStopping, 0L),
        };
        if (reason == P.WatchCancelReason.WatchTooSlow)
            throw new RpcException(new Status(StatusCode.ResourceExhausted, watcher.EndDetail));
        try
        {
            await stream.WriteAsync(Canceled(reason, watcher.EndDetail, compacted, sentThrough, hub), CancellationToken.None);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or OperationCanceledException)
        {
            // The stream could not take it (a send was cut off): the call's end says enough.
            throw new RpcException(new Status(StatusCode.Unavailable, watcher.EndDetail));
        }
    }

    private static P.WatchReply Canceled(P.WatchCancelReason reason, string detail, long compacted, long sentThrough, WatchHub hub) => new()
    {
        Canceled = true,
        CancelReason = reason,
        CancelDetail = detail,
        CompactRevision = compacted,
        Revision = Math.Max(0, sentThrough),
        NodeRevision = hub.Revision,
    };

    private static P.WatchEvent ToProto(KvEvent change)
    {
        var item = change.Item;
        return change.Kind == KvEventKind.Put
            ? new P.WatchEvent
            {
                Kind = P.EventKind.EventPut,
                Key = item.Key,
                Value = UnsafeByteOperations.UnsafeWrap(item.Value),
                ModRevision = item.ModRevision,
                CreateRevision = item.CreateRevision,
                Version = item.Version,
                Lease = item.Lease,
            }
            : new P.WatchEvent { Kind = P.EventKind.EventDelete, Key = item.Key, ModRevision = item.ModRevision };
    }
}
