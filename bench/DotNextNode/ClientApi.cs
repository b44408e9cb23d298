using System.Net;
using DotNext.Net.Cluster.Consensus.Raft;
using Google.Protobuf;
using Grpc.Core;
using P = RaftPS.Protocol;

namespace DotNextNode;

/// <summary>
/// RaftPS's client service (protos/raft.proto) over a DotNext Raft member: GetLeader, Set and Get,
/// with the replies and errors RaftServer's ClientService gives, so RaftPS.Bench drives it as it
/// drives RaftPS. Differences: only the leader serves Set and Get (a follower answers UNAVAILABLE
/// with the "raftps-leader" trailer instead of forwarding; the benchmark connects to the leader),
/// and Status, SetMany, Delete, Range, Suspend are not implemented (UNIMPLEMENTED; the benchmark
/// falls back from Status to GetLeader).
/// </summary>
sealed class ClientApi(IRaftCluster cluster, KvStateMachine state, ClusterConfig config) : P.RaftClient.RaftClientBase
{
    const string LeaderTrailer = "raftps-leader";
    const int MaxKeyBytes = 1024, MaxValueBytes = 1 << 20; // RaftPS's limits (RequestValidation)

    public override Task<P.GetLeaderReply> GetLeader(P.GetLeaderRequest request, ServerCallContext context)
    {
        if (LeaderNode() is not { } leader)
            throw Unavailable("no leader is known yet (an election is under way or there is no quorum)");
        return Task.FromResult(new P.GetLeaderReply
        {
            Leader = new P.NodeInfo { Id = leader.Id, Address = leader.Host, Port = leader.Port },
            Term = cluster.Term,
        });
    }

    public override async Task<P.SetReply> Set(P.SetRequest request, ServerCallContext context)
    {
        Validate(request.Key);
        if (request.Value.Length > MaxValueBytes) throw new RpcException(new Status(StatusCode.InvalidArgument, "the value is over 1 MiB"));
        RequireLeader();
        var applied = new Applied();
        var command = KvStateMachine.EncodeSet(request.Key, request.Value.Span);
        try
        {
            // Appends to the leader's WAL, replicates, and completes once a majority has it and it
            // is committed; `applied` (the entry's context) completes when the state machine has applied it.
            await cluster.ReplicateAsync(command, applied, context.CancellationToken);
            return new P.SetReply { Index = await applied.Task.WaitAsync(context.CancellationToken) };
        }
        catch (NotLeaderException)
        {
            throw Unavailable("this node is not the leader");
        }
        catch (OperationCanceledException)
        {
            // The client's token, or DotNext's own (its leadership token when this node steps down).
            throw context.CancellationToken.IsCancellationRequested ? Cancelled(context) : Unavailable("leadership was lost during the request");
        }
    }

    public override async Task<P.GetReply> Get(P.GetRequest request, ServerCallContext context)
    {
        Validate(request.Key);
        if (!request.Stale)
        {
            RequireLeader();
            try
            {
                // DotNext's linearizable read (Strong, what the extension without a type uses): the
                // leader confirms it still leads and waits until its commit index is applied.
                await cluster.ApplyReadBarrierAsync(ReadBarrierType.Strong, context.CancellationToken);
            }
            catch (NotLeaderException)
            {
                throw Unavailable("this node is not the leader");
            }
            catch (QuorumUnreachableException)
            {
                throw Unavailable("the quorum is not reachable");
            }
            catch (OperationCanceledException)
            {
                throw context.CancellationToken.IsCancellationRequested ? Cancelled(context) : Unavailable("leadership was lost during the read");
            }
        }
        return state.TryGet(request.Key, out var value)
            ? new P.GetReply { Found = true, Value = UnsafeByteOperations.UnsafeWrap(value) }
            : new P.GetReply { Found = false };
    }

    static void Validate(string key)
    {
        if (string.IsNullOrEmpty(key)) throw new RpcException(new Status(StatusCode.InvalidArgument, "the key is empty"));
        if (System.Text.Encoding.UTF8.GetByteCount(key) > MaxKeyBytes) throw new RpcException(new Status(StatusCode.InvalidArgument, "the key is over 1 KiB"));
    }

    void RequireLeader()
    {
        // LeadershipToken stays uncancelled while this node leads.
        if (cluster.LeadershipToken.IsCancellationRequested) throw Unavailable("this node is not the leader");
    }

    /// <summary>The leader as a node of the config file (its client port), from DotNext's leader endpoint (its Raft port).</summary>
    ClusterConfig.Node? LeaderNode() =>
        cluster.Leader?.EndPoint is IPEndPoint ep ? config.ByRaftPort(ep.Port) : null;

    RpcException Unavailable(string message)
    {
        var trailers = new Metadata();
        if (LeaderNode() is { } n) trailers.Add(LeaderTrailer, $"{n.Id} {n.Host}:{n.Port}");
        return new RpcException(new Status(StatusCode.Unavailable, message), trailers);
    }

    static RpcException Cancelled(ServerCallContext context) =>
        context.Deadline <= DateTime.UtcNow
            ? new(new Status(StatusCode.DeadlineExceeded, "the deadline passed before the request completed"))
            : new(new Status(StatusCode.Cancelled, "the call was cancelled"));
}
