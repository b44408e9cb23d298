using Grpc.Core;

namespace RaftServer.Api;

/// <summary>
/// Which administrative calls this node accepts: the one place that decides, so roles can be
/// added here without touching the calls. Today: Suspend only when the server was started with
/// <c>--allow-suspend</c> (Start-RaftCluster sets it for the local clusters it runs); otherwise
/// anyone who can reach the port could stop the cluster one node at a time, again and again.
/// </summary>
public sealed class AdminOperations(bool allowSuspend)
{
    public const string AllowSuspendOption = "--allow-suspend";

    /// <summary>PERMISSION_DENIED unless Suspend is enabled on this node.</summary>
    public void CheckSuspend(ServerCallContext context)
    {
        if (!allowSuspend)
            throw new RpcException(new Status(StatusCode.PermissionDenied,
                $"Suspend is disabled on this node: start the server with {AllowSuspendOption} to allow it (Start-RaftCluster does for the local clusters it starts)"));
    }
}
