using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using RaftServer.Api.Security;
using RaftServer.Cluster;
using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.Observability;
using RaftServer.StateMachine;
using RaftServer.Transport;
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
public sealed partial class ClientService(NodeLoop loop, Membership membership, PeerTransport peers, ILoggerFactory loggers, NodeMetrics metrics,
    ClientAccess access, AdminOperations admin) : P.RaftClient.RaftClientBase
{
    public const string LeaderTrailer = "raftps-leader";
    public const string ForwardedHeader = "raftps-forwarded";

    private readonly ILogger _log = loggers.CreateLogger(Log.RequestCategory);
    private static readonly Metadata ForwardHeaders = new() { { ForwardedHeader, "1" } };

    public override Task<P.GetLeaderReply> GetLeader(P.GetLeaderRequest request, ServerCallContext context)
    {
        Log.GetLeaderCommand(_log);
        var view = CheckAwake();
        if (view.LeaderId == SoftState.NoLeader || membership.Find(view.LeaderId) is not { } leader)
            throw Unavailable("no leader is known yet (an election is under way or there is no quorum)", SoftState.NoLeader);
        Log.LeaderAnswer(_log, leader.Id, leader.Address.Authority);
        return Task.FromResult(new P.GetLeaderReply { Leader = StatusMapping.ToInfo(leader), Term = view.Term });
    }

    public override async Task<P.SetReply> Set(P.SetRequest request, ServerCallContext context)
    {
        RequestValidation.Key(request.Key);
        RequestValidation.Value(request.Value.Length);
        RequestValidation.Lease(request.Lease);
        Log.SetCommand(_log, request.Key, new Utf8Text(request.Value.Memory));
        var data = Command.EncodePut(NowMs(), request.ClientId, request.Sequence, request.Key, request.Value.Span, default, request.Lease);
        var result = await WriteAsync(data, request.ClientId, request.Sequence, context,
            static (client, req, headers, deadline, ct) => client.SetAsync(req, headers, deadline, ct).ResponseAsync, request);
        return result.Forwarded ?? new P.SetReply { Index = result.Local.Index };
    }

    public override async Task<P.DeleteReply> Delete(P.DeleteRequest request, ServerCallContext context)
    {
        RequestValidation.Key(request.Key);
        Log.DeleteCommand(_log, request.Key);
        var data = Command.EncodeRemove(NowMs(), request.ClientId, request.Sequence, request.Key);
        var result = await WriteAsync(data, request.ClientId, request.Sequence, context,
            static (client, req, headers, deadline, ct) => client.DeleteAsync(req, headers, deadline, ct).ResponseAsync, request);
        return result.Forwarded ?? new P.DeleteReply { Existed = result.Local.Existed, Index = result.Local.Index };
    }

    private readonly record struct WriteDone<TReply>(TReply? Forwarded, WriteResult Local) where TReply : class;

    private static long NowMs() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    /// <summary>
    /// Proposes the encoded command <paramref name="data"/> on the leader (or forwards the request
    /// to it) and waits until it is applied. A Put whose lease is gone fails NotFound; a failed
    /// condition is a result, not an error (only Write asks for one).
    /// </summary>
    private async Task<WriteDone<TReply>> WriteAsync<TRequest, TReply>(byte[] data, ulong clientId, ulong sequence,
        ServerCallContext context, Func<P.RaftClient.RaftClientClient, TRequest, Metadata, DateTime?, CancellationToken, Task<TReply>> forward,
        TRequest request)
        where TReply : class
    {
        var forwarded = IsForwarded(context);
        if (ForwardTarget(forwarded) is { } leaderId)
            return new(await ForwardAsync(leaderId, forward, request, context), default);

        var outcome = await WaitAsync(loop.Propose(data), context);
        switch (outcome.Code)
        {
            case OutcomeCode.Ok when outcome.Result.Status == WriteStatus.LeaseNotFound:
                throw LeaseNotFound();
            case OutcomeCode.Ok:
                return new(null, outcome.Result);
            case OutcomeCode.NotLeader when CanForwardTo(outcome, forwarded):
                return new(await ForwardAsync(outcome.LeaderHint, forward, request, context), default);
            case OutcomeCode.Stale:
                throw new RpcException(new Status(StatusCode.FailedPrecondition, StaleDetail(clientId, sequence)));
            case OutcomeCode.ResourceExhausted:
                throw Overloaded(outcome.Reason ?? "too many pending writes; retry later");
            case OutcomeCode.NoSpace:
                throw new RpcException(new Status(StatusCode.ResourceExhausted, outcome.Reason ?? "NOSPACE"));
            default:
                throw Unavailable(outcome.Reason ?? "not the leader", outcome.LeaderHint);
        }
    }

    /// <summary>
    /// SetMany: on the leader every valid item is proposed as its own entry (in request order, one
    /// loop event for all) and answered by its own result; a follower forwards the whole request.
    /// When leadership failed every proposed item, the call as a whole behaves as Set would
    /// (forwarded to the new leader, or Unavailable with its trailer), so the client retries it.
    /// </summary>
    public override async Task<P.SetManyReply> SetMany(P.SetManyRequest request, ServerCallContext context)
    {
        RequestValidation.Batch(request.Items.Count, request.CalculateSize());
        Log.SetManyCommand(_log, request.Items.Count);
        var forwarded = IsForwarded(context);
        if (ForwardTarget(forwarded) is { } leaderId)
            return await ForwardAsync(leaderId, ForwardSetMany, request, context);

        var results = new P.SetResult[request.Items.Count];
        var data = new List<byte[]>(results.Length);
        var slots = new List<int>(results.Length);
        var now = NowMs();
        for (var i = 0; i < results.Length; i++)
        {
            var item = request.Items[i];
            try
            {
                RequestValidation.Key(item.Key);
                RequestValidation.Value(item.Value.Length);
                RequestValidation.Lease(item.Lease);
            }
            catch (RpcException e)
            {
                results[i] = new P.SetResult { Code = (int)e.StatusCode, Error = e.Status.Detail };
                continue;
            }
            data.Add(Command.EncodePut(now, item.ClientId, item.Sequence, item.Key, item.Value.Span, default, item.Lease));
            slots.Add(i);
        }

        var outcomes = data.Count == 0 ? [] : await WaitAsync(Task.WhenAll(loop.ProposeMany(data)), context);
        // Admission takes or refuses a batch whole.
        if (outcomes.Length > 0 && outcomes[0].Code == OutcomeCode.ResourceExhausted)
            throw Overloaded(outcomes[0].Reason ?? "too many pending writes; retry later");
        if (outcomes.Length > 0 && outcomes.All(o => o.Code is OutcomeCode.NotLeader or OutcomeCode.Unavailable))
        {
            var first = outcomes[0];
            if (first.Code == OutcomeCode.NotLeader && CanForwardTo(first, forwarded))
                return await ForwardAsync(first.LeaderHint, ForwardSetMany, request, context);
            throw Unavailable(first.Reason ?? "not the leader", first.LeaderHint);
        }
        for (var j = 0; j < outcomes.Length; j++)
        {
            var o = outcomes[j];
            var item = request.Items[slots[j]];
            results[slots[j]] = o.Code switch
            {
                OutcomeCode.Ok when o.Result.Status == WriteStatus.LeaseNotFound => new P.SetResult { Code = (int)StatusCode.NotFound, Error = LeaseNotFoundDetail },
                OutcomeCode.Ok => new P.SetResult { Index = o.Result.Index },
                OutcomeCode.Stale => new P.SetResult { Code = (int)StatusCode.FailedPrecondition, Error = StaleDetail(item.ClientId, item.Sequence) },
                OutcomeCode.NoSpace => new P.SetResult { Code = (int)StatusCode.ResourceExhausted, Error = o.Reason ?? "NOSPACE" },
                _ => new P.SetResult { Code = (int)StatusCode.Unavailable, Error = o.Reason ?? "not the leader" },
            };
        }
        var reply = new P.SetManyReply();
        reply.Results.Add(results);
        return reply;
    }

    private static readonly Func<P.RaftClient.RaftClientClient, P.SetManyRequest, Metadata, DateTime?, CancellationToken, Task<P.SetManyReply>> ForwardSetMany =
        static (client, req, headers, deadline, ct) => client.SetManyAsync(req, headers, deadline, ct).ResponseAsync;

    /// <summary>
    /// The forwarded mark and the caller's token, which the leader checks again; for a user who
    /// authenticated here by client certificate, that user's name (the forwarding goes over peer TLS).
    /// </summary>
    private static Metadata ForwardHeadersOf(ServerCallContext context)
    {
        if (context.RequestHeaders.GetValue(ClientAccess.AuthorizationHeader) is { } token)
            return new Metadata { { ForwardedHeader, "1" }, { ClientAccess.AuthorizationHeader, token } };
        if (context.UserState.TryGetValue(ClientAccess.UserKey, out var user) && user is ClientUser certified)
            return new Metadata { { ForwardedHeader, "1" }, { ClientAccess.ForwardedUserHeader, certified.Name } };
        return ForwardHeaders;
    }

    private static bool IsForwarded(ServerCallContext context) => context.RequestHeaders.Get(ForwardedHeader) is not null;

    /// <summary>
    /// Where a write must go: null when this node is the leader and proposes it itself, else the
    /// leader to forward it to; Unavailable when there is none (or the write was forwarded already).
    /// </summary>
    private int? ForwardTarget(bool forwarded)
    {
        var view = CheckAwake();
        if (view.IsLeader) return null;
        if (forwarded || view.LeaderId == SoftState.NoLeader || view.LeaderId == membership.Self)
            throw Unavailable("this node is not the leader and no leader is known yet", forwarded ? SoftState.NoLeader : view.LeaderId);
        return view.LeaderId;
    }

    private bool CanForwardTo(WriteOutcome outcome, bool forwarded) =>
        !forwarded && outcome.LeaderHint != SoftState.NoLeader && outcome.LeaderHint != membership.Self;

    private static string StaleDetail(ulong clientId, ulong sequence) =>
        $"sequence {sequence} of client {clientId} is older than the last {SessionTable.Window} writes the server remembers for it";

    /// <summary>
    /// Forwards a call to the leader's client service. It gives up (Unavailable, naming the leader
    /// this node knows now) when the leader this node knows changes, or when the link to it finds
    /// its path silent (<see cref="PeerClient.LinkLost"/>), instead of waiting out the client's
    /// deadline on a node that cannot answer: the client then moves on at once (a write keeps its
    /// client id and sequence, so it still applies once). It is not even sent when that link does not
    /// hear the leader (<see cref="PeerClient.Reachable"/>): the client can try the leader itself.
    /// </summary>
    /// <param name="changesLeader">The call itself hands the leadership over (a transfer, removing
    /// the leader): the leader change it causes must not end it, or a client would retry what
    /// already happened (a transfer without a target would move the leadership again).</param>
    private async Task<TReply> ForwardAsync<TRequest, TReply>(int leaderId,
        Func<P.RaftClient.RaftClientClient, TRequest, Metadata, DateTime?, CancellationToken, Task<TReply>> forward,
        TRequest request, ServerCallContext context, bool changesLeader = false)
    {
        if (peers.Peer(leaderId) is not { } peer)
            throw Unavailable("the leader is not a known peer", leaderId);
        // Without peer TLS the path between nodes is plain text: a node that serves clients over TLS
        // only does not carry their calls (and tokens) over it; the client is sent to the leader instead.
        if (access.TlsOnly && !access.PeerTls && ClientMethodRoles.ForPath(context.Method, out _) != ClientRole.Public)
            throw Unavailable($"this node serves clients over TLS and does not forward calls over the plain-text path between nodes; call the leader (node {leaderId})", leaderId);
        var leaderChanged = changesLeader ? CancellationToken.None : loop.LeaderChanged; // before the view: a change after this cancels it
        var view = loop.View;
        if (view.LeaderId != leaderId)
            throw Unavailable($"the leader changed (node {leaderId} no longer leads as far as this node knows)", view.LeaderId);
        if (!peer.Reachable)
            throw Unavailable($"node {leaderId}, the leader, does not answer this node", leaderId);
        var linkLost = peer.LinkLost;
        DateTime? deadline = context.Deadline == DateTime.MaxValue ? null : context.Deadline;
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, leaderChanged, linkLost);
        try
        {
            return await forward(peer.Client, request, ForwardHeadersOf(context), deadline, cancel.Token);
        }
        catch (Exception e) when (e is RpcException { StatusCode: StatusCode.Cancelled } or OperationCanceledException
                                  && !context.CancellationToken.IsCancellationRequested && (leaderChanged.IsCancellationRequested || linkLost.IsCancellationRequested))
        {
            var now = loop.View.LeaderId;
            throw leaderChanged.IsCancellationRequested
                ? Unavailable($"the leader changed while the call was forwarded to node {leaderId}", now)
                : Unavailable($"the link to node {leaderId}, the leader, went silent while the call was forwarded", now);
        }
        catch (RpcException e)
        {
            if (e.StatusCode == StatusCode.Cancelled && context.Deadline <= DateTime.UtcNow)
                throw DeadlineExceeded();
            // The client did not cancel: the link to the leader was closed under the call (a
            // membership change removed the leader, or moved it). Whether it acted is unknown;
            // writes carry their session and membership changes are idempotent, so a retry is safe.
            if (e.StatusCode == StatusCode.Cancelled && !context.CancellationToken.IsCancellationRequested)
                throw Unavailable($"the link to the leader (node {leaderId}) closed before it answered; retry", leaderId);
            var trailers = new Metadata();
            var hint = e.Trailers.GetValue(LeaderTrailer);
            if (hint is not null) trailers.Add(LeaderTrailer, hint);
            else if (e.StatusCode == StatusCode.Unavailable && LeaderText(leaderId) is { } text) trailers.Add(LeaderTrailer, text);
            if (e.Trailers.GetValue(RetryPushbackTrailer) is { } pushback) trailers.Add(RetryPushbackTrailer, pushback);
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
        var outcome = await WaitAsync(loop.Read(new PendingRead { Key = request.Key, Stale = request.Stale || UnsafeTestSwitches.LocalReads }), context);
        if (outcome.Code != OutcomeCode.Ok) throw ReadFailed(outcome, "the read failed");
        if (!outcome.Found) return new P.GetReply { Found = false, Revision = outcome.Revision };
        var item = outcome.Item;
        return new P.GetReply
        {
            Found = true,
            Value = UnsafeByteOperations.UnsafeWrap(outcome.Value),
            CreateRevision = item.CreateRevision,
            ModRevision = item.ModRevision,
            Version = item.Version,
            Lease = item.Lease,
            Revision = outcome.Revision,
        };
    }

    public override async Task<P.RangeReply> Range(P.RangeRequest request, ServerCallContext context)
    {
        RequestValidation.Prefix(request.Prefix, request.StartAfter);
        var limit = RequestValidation.Limit(request.Limit);
        Log.RangeCommand(_log, request.Prefix);
        CheckAwake();
        var read = new PendingRead { IsRange = true, Prefix = request.Prefix, StartAfter = request.StartAfter, Limit = limit, Stale = request.Stale || UnsafeTestSwitches.LocalReads };
        var outcome = await WaitAsync(loop.Read(read), context);
        if (outcome.Code != OutcomeCode.Ok) throw ReadFailed(outcome, "the read failed");
        var reply = new P.RangeReply { More = outcome.More, Revision = outcome.Revision };
        foreach (var item in outcome.Items!)
        {
            reply.Items.Add(new P.KeyValue
            {
                Key = item.Key,
                Value = UnsafeByteOperations.UnsafeWrap(item.Value),
                CreateRevision = item.CreateRevision,
                ModRevision = item.ModRevision,
                Version = item.Version,
                Lease = item.Lease,
            });
        }
        return reply;
    }

    public override Task<P.SuspendReply> Suspend(P.SuspendRequest request, ServerCallContext context)
    {
        Log.SuspendCommand(_log, request.Seconds);
        admin.CheckSuspend(context);
        RequestValidation.SuspendSeconds(request.Seconds);
        CheckAwake();
        loop.Suspend(request.Seconds);
        return Task.FromResult(new P.SuspendReply());
    }

    public override async Task<P.StatusReply> Status(P.StatusRequest request, ServerCallContext context)
    {
        Log.StatusCommand(_log);
        CheckAwake();
        return StatusMapping.WithLoad(StatusMapping.ToReply(await WaitAsync(loop.Status(), context)), metrics);
    }

    // ---- membership ----

    public override async Task<P.ListMembersReply> ListMembers(P.ListMembersRequest request, ServerCallContext context)
    {
        CheckAwake();
        if (ForwardTarget(IsForwarded(context)) is { } leaderId)
            return await ForwardAsync(leaderId, static (c, r, h, d, ct) => c.ListMembersAsync(r, h, d, ct).ResponseAsync, request, context);
        var reply = StatusMapping.ToMembers(await WaitAsync(loop.Status(), context));
        reply.ClusterId = membership.Identity.Id; // a joining node keeps it (docs/security.md)
        return reply;
    }

    public override Task<P.MembersReply> AddMember(P.AddMemberRequest request, ServerCallContext context)
    {
        RequestValidation.MemberId(request.Id);
        var host = NodeAddress.BareHost(request.Address);
        RequestValidation.Address(host, request.Port);
        Log.MemberCommand(_log, request.Learner ? "add learner" : "add voter", request.Id);
        return ChangeMembershipAsync(request.Learner ? ChangeKind.AddLearner : ChangeKind.AddVoter, request.Id, host, request.Port, context,
            static (c, r, h, d, ct) => c.AddMemberAsync(r, h, d, ct).ResponseAsync, request);
    }

    public override Task<P.MembersReply> PromoteMember(P.PromoteMemberRequest request, ServerCallContext context)
    {
        RequestValidation.MemberId(request.Id);
        Log.MemberCommand(_log, "promote", request.Id);
        return ChangeMembershipAsync(ChangeKind.Promote, request.Id, "", 0, context,
            static (c, r, h, d, ct) => c.PromoteMemberAsync(r, h, d, ct).ResponseAsync, request);
    }

    public override async Task<P.MembersReply> RemoveMember(P.RemoveMemberRequest request, ServerCallContext context)
    {
        RequestValidation.MemberId(request.Id);
        Log.MemberCommand(_log, "remove", request.Id);
        var view = CheckAwake();
        if (view.IsLeader && request.Id == membership.Self)
        {
            // The leader removes itself by handing leadership to another voter first, which then
            // removes it: no election timeout without a leader (and the cluster never runs on a
            // leader that does not count itself).
            var handed = await WaitAsync(loop.TransferLeadership(null), context);
            if (handed.Code != OutcomeCode.Ok) throw TransferFailed(handed);
            return await ForwardAsync(handed.LeaderId, static (c, r, h, d, ct) => c.RemoveMemberAsync(r, h, d, ct).ResponseAsync, request, context, changesLeader: true);
        }
        return await ChangeMembershipAsync(ChangeKind.Remove, request.Id, "", 0, context,
            static (c, r, h, d, ct) => c.RemoveMemberAsync(r, h, d, ct).ResponseAsync, request);
    }

    private async Task<P.MembersReply> ChangeMembershipAsync<TRequest>(ChangeKind kind, int id, string host, int port, ServerCallContext context,
        Func<P.RaftClient.RaftClientClient, TRequest, Metadata, DateTime?, CancellationToken, Task<P.MembersReply>> forward, TRequest request)
    {
        var forwarded = IsForwarded(context);
        // Removing a member may remove the leader, which hands the leadership over first.
        var changesLeader = kind == ChangeKind.Remove;
        if (ForwardTarget(forwarded) is { } leaderId)
            return await ForwardAsync(leaderId, forward, request, context, changesLeader);
        var outcome = await WaitAsync(loop.ChangeMembership(kind, id, host, port), context);
        switch (outcome.Code)
        {
            case OutcomeCode.Ok:
                var reply = new P.MembersReply { Index = outcome.Result.Index };
                foreach (var m in membership.Current.Members) reply.Members.Add(StatusMapping.ToInfo(m));
                return reply;
            case OutcomeCode.NotLeader when CanForwardTo(outcome, forwarded):
                return await ForwardAsync(outcome.LeaderHint, forward, request, context, changesLeader);
            case OutcomeCode.NotFound:
                throw new RpcException(new Status(StatusCode.NotFound, outcome.Reason ?? $"node {id} is not a member"));
            case OutcomeCode.AlreadyExists:
                throw new RpcException(new Status(StatusCode.AlreadyExists, outcome.Reason ?? $"node {id} is already a member"));
            case OutcomeCode.FailedPrecondition:
                throw new RpcException(new Status(StatusCode.FailedPrecondition, outcome.Reason ?? "the change cannot be made now"));
            default:
                throw Unavailable(outcome.Reason ?? "not the leader", outcome.LeaderHint);
        }
    }

    public override async Task<P.TransferLeadershipReply> TransferLeadership(P.TransferLeadershipRequest request, ServerCallContext context)
    {
        int? target = request.HasTarget ? request.Target : null;
        if (target is { } t) RequestValidation.MemberId(t);
        Log.TransferCommand(_log, target?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "the most up-to-date voter");
        var forwarded = IsForwarded(context);
        if (ForwardTarget(forwarded) is { } leaderId)
            return await ForwardAsync(leaderId, static (c, r, h, d, ct) => c.TransferLeadershipAsync(r, h, d, ct).ResponseAsync, request, context, changesLeader: true);
        var outcome = await WaitAsync(loop.TransferLeadership(target), context);
        if (outcome.Code == OutcomeCode.NotLeader && !forwarded && outcome.LeaderId != SoftState.NoLeader && outcome.LeaderId != membership.Self)
            return await ForwardAsync(outcome.LeaderId, static (c, r, h, d, ct) => c.TransferLeadershipAsync(r, h, d, ct).ResponseAsync, request, context, changesLeader: true);
        if (outcome.Code != OutcomeCode.Ok) throw TransferFailed(outcome);
        var reply = new P.TransferLeadershipReply { Term = outcome.Term };
        if (membership.Find(outcome.LeaderId) is { } leader) reply.Leader = StatusMapping.ToInfo(leader);
        return reply;
    }

    private RpcException TransferFailed(TransferOutcome outcome) => outcome.Code switch
    {
        OutcomeCode.NotFound => new RpcException(new Status(StatusCode.NotFound, outcome.Reason ?? "no such member")),
        OutcomeCode.FailedPrecondition => new RpcException(new Status(StatusCode.FailedPrecondition, outcome.Reason ?? "the transfer cannot be made")),
        _ => Unavailable(outcome.Reason ?? "the transfer did not complete", outcome.LeaderId),
    };

    public override Task<P.ResumeReply> Resume(P.ResumeRequest request, ServerCallContext context)
    {
        // The one call a suspended node answers.
        Log.ResumeCommand(_log);
        loop.Resume();
        return Task.FromResult(new P.ResumeReply());
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
        leaderId != SoftState.NoLeader && membership.Find(leaderId) is { } n ? $"{n.Id} {n.Address.Authority}" : null;

    private RpcException Unavailable(string message, int leaderHint)
    {
        var trailers = new Metadata();
        if (LeaderText(leaderHint) is { } text) trailers.Add(LeaderTrailer, text);
        return new RpcException(new Status(StatusCode.Unavailable, message), trailers);
    }
}
