using P = RaftPS.Protocol;

namespace RaftServer.Api.Security;

/// <summary>
/// The role each call of the client service needs: the one place that says it. A call missing
/// here is refused (PermissionDenied) whatever the caller's role, and a test fails on every method
/// of the service this map does not name, so a new RPC cannot be served unguarded by accident.
/// </summary>
public static class ClientMethodRoles
{
    public const string ServicePrefix = "/" + "raftps.RaftClient" + "/";

    private static readonly Dictionary<string, ClientRole> Roles = new(StringComparer.Ordinal)
    {
        // The members are needed by a node that joins (--join asks any member with no credentials)
        // and name no data: like etcd's MemberList, open to every client.
        [nameof(P.RaftClient.RaftClientBase.ListMembers)] = ClientRole.Public,

        [nameof(P.RaftClient.RaftClientBase.GetLeader)] = ClientRole.Read,
        [nameof(P.RaftClient.RaftClientBase.Get)] = ClientRole.Read,
        [nameof(P.RaftClient.RaftClientBase.Range)] = ClientRole.Read,
        [nameof(P.RaftClient.RaftClientBase.Status)] = ClientRole.Read,
        [nameof(P.RaftClient.RaftClientBase.Watch)] = ClientRole.Read,

        [nameof(P.RaftClient.RaftClientBase.Set)] = ClientRole.Write,
        [nameof(P.RaftClient.RaftClientBase.SetMany)] = ClientRole.Write,
        [nameof(P.RaftClient.RaftClientBase.Delete)] = ClientRole.Write,
        [nameof(P.RaftClient.RaftClientBase.Write)] = ClientRole.Write,
        [nameof(P.RaftClient.RaftClientBase.LeaseGrant)] = ClientRole.Write,
        [nameof(P.RaftClient.RaftClientBase.LeaseRevoke)] = ClientRole.Write,
        [nameof(P.RaftClient.RaftClientBase.LeaseKeepAlive)] = ClientRole.Write,

        [nameof(P.RaftClient.RaftClientBase.Suspend)] = ClientRole.Admin,
        [nameof(P.RaftClient.RaftClientBase.Resume)] = ClientRole.Admin,
        [nameof(P.RaftClient.RaftClientBase.AddMember)] = ClientRole.Admin,
        [nameof(P.RaftClient.RaftClientBase.PromoteMember)] = ClientRole.Admin,
        [nameof(P.RaftClient.RaftClientBase.RemoveMember)] = ClientRole.Admin,
        [nameof(P.RaftClient.RaftClientBase.TransferLeadership)] = ClientRole.Admin,
    };

    /// <summary>The role a method of the client service needs (by its short name, e.g. "Set"); null when it is not mapped.</summary>
    public static ClientRole? For(string method) => Roles.TryGetValue(method, out var role) ? role : null;

    /// <summary>
    /// The role a gRPC method path needs: for "/raftps.RaftClient/NAME" that of NAME (null when
    /// unmapped); for any other service (the peer service) <see cref="ClientRole.Public"/>: peer
    /// calls are not client calls.
    /// </summary>
    public static ClientRole? ForPath(string path, out bool isClientCall)
    {
        isClientCall = path.StartsWith(ServicePrefix, StringComparison.Ordinal);
        return isClientCall ? For(path[ServicePrefix.Length..]) : ClientRole.Public;
    }
}
