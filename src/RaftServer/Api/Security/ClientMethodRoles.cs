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
    public const string PeerServicePrefix = "/" + "raftps.RaftPeer" + "/";

    // Case-insensitive like ASP.NET Core's routing, which serves "/RAFTPS.RAFTCLIENT/SET" as Set:
    // a check stricter than the routing would let such a path through unchecked.
    private static readonly Dictionary<string, ClientRole> Roles = new(StringComparer.OrdinalIgnoreCase)
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

    /// <summary>The name as the service declares it ("Set" for "set"); null for a name it does not have.</summary>
    public static string? CanonicalName(string method) =>
        Roles.Keys.FirstOrDefault(name => string.Equals(name, method, StringComparison.OrdinalIgnoreCase));

    /// <summary>The role a method of the client service needs (by its short name, e.g. "Set"); null when it is not mapped.</summary>
    public static ClientRole? For(string method) => Roles.TryGetValue(method, out var role) ? role : null;

    /// <summary>
    /// The role a gRPC method path needs, its service and method compared without regard to case (as
    /// the routing does): for the peer service <see cref="ClientRole.Public"/> (peer calls are not
    /// client calls); for "/raftps.RaftClient/NAME" that of NAME; null (refused) for anything else,
    /// an unmapped method or a path of another service.
    /// </summary>
    public static ClientRole? ForPath(string path, out bool isClientCall)
    {
        isClientCall = !path.StartsWith(PeerServicePrefix, StringComparison.OrdinalIgnoreCase);
        if (!isClientCall) return ClientRole.Public;
        return path.StartsWith(ServicePrefix, StringComparison.OrdinalIgnoreCase) ? For(path[ServicePrefix.Length..]) : null;
    }

    /// <summary>The method's name in a path of the client service (the path itself otherwise), for messages.</summary>
    public static string MethodName(string path) =>
        path.StartsWith(ServicePrefix, StringComparison.OrdinalIgnoreCase) ? path[ServicePrefix.Length..] : path;
}
