using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.StateMachine;
using P = RaftPS.Protocol;

namespace RaftServer.Api;

/// <summary>
/// The client service of protos/raft.proto. Any node answers every call: a follower forwards
/// writes to the leader's client service; reads are linearizable through the read index
/// (the core asks the leader) unless stale is set. Failures are gRPC statuses: InvalidArgument
/// for bad input, Unavailable (with the "raftps-leader" trailer when a leader is known) for no
/// leader / suspended / leadership lost, DeadlineExceeded when the client's deadline passes,
/// FailedPrecondition for a sequence number older than the client's session window.
/// </summary>
public sealed class ClientService(NodeLoop loop, ILoggerFactory loggers) : P.RaftClient.RaftClientBase
{
    public const string LeaderTrailer = "raftps-leader";
    public const string ForwardedHeader = "raftps-forwarded";

    private readonly ILogger _log = loggers.CreateLogger(Log.RequestCategory);
    private static readonly Metadata ForwardHeaders = new() { { ForwardedHeader, "1" } };

    public override Task<P.GetLeaderReply> GetLeader(P.GetLeaderRequest request, ServerCallContext context)
    {
        Log.GetLeaderCommand(_log);
        var view = CheckAwake();
        if (view.LeaderId == SoftState.NoLeader || loop.Config.Find(view.LeaderId) is not { } leader)
            throw Unavailable("no leader is known yet (an election is under way or there is no quorum)", SoftState.NoLeader);
        Log.LeaderAnswer(_log, leader.Id, $"{leader.Host}:{leader.Port}");
        return Task.FromResult(new P.GetLeaderReply { Leader = NodeLoop.ToInfo(leader), Term = view.Term });
    }

    public override async Task<P.SetReply> Set(P.SetRequest request, ServerCallContext context)
    {
        RequestValidation.Key(request.Key);
        RequestValidation.Value(request.Value.Length);
        Log.SetCommand(_log, request.Key, new Utf8Text(request.Value.Memory));
        var result = await WriteAsync(CommandOp.Set, request.Key, request.Value, request.ClientId, request.Sequence, context,
            static (client, req, headers, deadline, ct) => client.SetAsync(req, headers, deadline, ct).ResponseAsync, request);
        return result.Forwarded ?? new P.SetReply { Index = result.Local.Index };
    }

    public override async Task<P.DeleteReply> Delete(P.DeleteRequest request, ServerCallContext context)
    {
        RequestValidation.Key(request.Key);
        Log.DeleteCommand(_log, request.Key);
        var result = await WriteAsync(CommandOp.Delete, request.Key, ByteString.Empty, request.ClientId, request.Sequence, context,
            static (client, req, headers, deadline, ct) => client.DeleteAsync(req, headers, deadline, ct).ResponseAsync, request);
        return result.Forwarded ?? new P.DeleteReply { Existed = result.Local.Existed, Index = result.Local.Index };
    }

    private readonly record struct WriteDone<TReply>(TReply? Forwarded, WriteResult Local) where TReply : class;

    private async Task<WriteDone<TReply>> WriteAsync<TRequest, TReply>(CommandOp op, string key, ByteString value, ulong clientId, ulong sequence,
        ServerCallContext context, Func<P.RaftClient.RaftClientClient, TRequest, Metadata, DateTime?, CancellationToken, Task<TReply>> forward,
        TRequest request)
        where TReply : class
    {
        var view = CheckAwake();
        var forwarded = context.RequestHeaders.Get(ForwardedHeader) is not null;
        if (!view.IsLeader)
        {
            if (forwarded || view.LeaderId == SoftState.NoLeader || view.LeaderId == loop.Id)
                throw Unavailable("this node is not the leader and no leader is known yet", forwarded ? SoftState.NoLeader : view.LeaderId);
            return new(await ForwardAsync(view.LeaderId, forward, request, context), default);
        }

        var data = Command.Encode(op, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), clientId, sequence, key, value.Span);
        var outcome = await WaitAsync(loop.Propose(data), context);
        switch (outcome.Code)
        {
            case OutcomeCode.Ok:
                return new(null, outcome.Result);
            case OutcomeCode.NotLeader when !forwarded && outcome.LeaderHint != SoftState.NoLeader && outcome.LeaderHint != loop.Id:
                return new(await ForwardAsync(outcome.LeaderHint, forward, request, context), default);
            case OutcomeCode.Stale:
                throw new RpcException(new Status(StatusCode.FailedPrecondition,
                    $"sequence {sequence} of client {clientId} is older than the last {SessionTable.Window} writes the server remembers for it"));
            default:
                throw Unavailable(outcome.Reason ?? "not the leader", outcome.LeaderHint);
        }
    }

    private async Task<TReply> ForwardAsync<TRequest, TReply>(int leaderId,
        Func<P.RaftClient.RaftClientClient, TRequest, Metadata, DateTime?, CancellationToken, Task<TReply>> forward,
        TRequest request, ServerCallContext context)
    {
        if (loop.Peers.Peer(leaderId) is not { } peer)
            throw Unavailable("the leader is not a known peer", leaderId);
        DateTime? deadline = context.Deadline == DateTime.MaxValue ? null : context.Deadline;
        try
        {
            return await forward(peer.Client, request, ForwardHeaders, deadline, context.CancellationToken);
        }
        catch (RpcException e)
        {
            if (e.StatusCode == StatusCode.Cancelled && context.Deadline <= DateTime.UtcNow)
                throw DeadlineExceeded();
            var trailers = new Metadata();
            var hint = e.Trailers.GetValue(LeaderTrailer);
            if (hint is not null) trailers.Add(LeaderTrailer, hint);
            else if (e.StatusCode == StatusCode.Unavailable && LeaderText(leaderId) is { } text) trailers.Add(LeaderTrailer, text);
            var detail = e.StatusCode == StatusCode.Unavailable && hint is null ? $"the leader (node {leaderId}) did not answer: {e.Status.Detail}" : e.Status.Detail;
            throw new RpcException(new Status(e.StatusCode, detail), trailers);
        }
        catch (OperationCanceledException) when (context.Deadline <= DateTime.UtcNow)
        {
            throw DeadlineExceeded();
        }
    }

    public override async Task<P.GetReply> Get(P.GetRequest request, ServerCallContext context)
    {
        RequestValidation.Key(request.Key);
        Log.GetCommand(_log, request.Key);
        CheckAwake();
        var outcome = await WaitAsync(loop.Read(new PendingRead { Key = request.Key, Stale = request.Stale }), context);
        if (outcome.Code != OutcomeCode.Ok) throw Unavailable(outcome.Reason ?? "the read failed", outcome.LeaderHint);
        return outcome.Found
            ? new P.GetReply { Found = true, Value = UnsafeByteOperations.UnsafeWrap(outcome.Value) }
            : new P.GetReply { Found = false };
    }

    public override async Task<P.RangeReply> Range(P.RangeRequest request, ServerCallContext context)
    {
        RequestValidation.Prefix(request.Prefix, request.StartAfter);
        var limit = RequestValidation.Limit(request.Limit);
        Log.RangeCommand(_log, request.Prefix);
        CheckAwake();
        var read = new PendingRead { IsRange = true, Prefix = request.Prefix, StartAfter = request.StartAfter, Limit = limit, Stale = request.Stale };
        var outcome = await WaitAsync(loop.Read(read), context);
        if (outcome.Code != OutcomeCode.Ok) throw Unavailable(outcome.Reason ?? "the read failed", outcome.LeaderHint);
        var reply = new P.RangeReply { More = outcome.More };
        foreach (var item in outcome.Items!)
            reply.Items.Add(new P.KeyValue { Key = item.Key, Value = UnsafeByteOperations.UnsafeWrap(item.Value) });
        return reply;
    }

    public override Task<P.SuspendReply> Suspend(P.SuspendRequest request, ServerCallContext context)
    {
        Log.SuspendCommand(_log, request.Seconds);
        RequestValidation.SuspendSeconds(request.Seconds);
        CheckAwake();
        loop.Suspend(request.Seconds);
        return Task.FromResult(new P.SuspendReply());
    }

    public override async Task<P.StatusReply> Status(P.StatusRequest request, ServerCallContext context)
    {
        Log.StatusCommand(_log);
        CheckAwake();
        return await WaitAsync(loop.Status(), context);
    }

    // ---- helpers ----

    private NodeView CheckAwake()
    {
        var view = loop.View;
        if (view.Suspended) throw Unavailable("the node is suspended", SoftState.NoLeader);
        return view;
    }

    private static async Task<T> WaitAsync<T>(Task<T> task, ServerCallContext context)
    {
        try
        {
            return await task.WaitAsync(context.CancellationToken);
        }
        catch (OperationCanceledException)
        {
            if (context.Deadline <= DateTime.UtcNow) throw DeadlineExceeded();
            throw new RpcException(new Status(StatusCode.Cancelled, "the call was cancelled"));
        }
    }

    private static RpcException DeadlineExceeded() =>
        new(new Status(StatusCode.DeadlineExceeded, "the deadline passed before the request completed"));

    private string? LeaderText(int leaderId) =>
        leaderId != SoftState.NoLeader && loop.Config.Find(leaderId) is { } n ? $"{n.Id} {n.Host}:{n.Port}" : null;

    private RpcException Unavailable(string message, int leaderHint)
    {
        var trailers = new Metadata();
        if (LeaderText(leaderHint) is { } text) trailers.Add(LeaderTrailer, text);
        return new RpcException(new Status(StatusCode.Unavailable, message), trailers);
    }
}
