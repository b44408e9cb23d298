using Grpc.Core;
using Microsoft.AspNetCore.Http.Features;

namespace RaftServer.Api.Security;

/// <summary>
/// Who may call what on the client service: whether calls must come over TLS (client TLS on) and,
/// with an auth file, whose token the call carries and whether that user's role covers the method
/// (<see cref="ClientMethodRoles"/>). Without an auth file every client may do everything.
/// The users can be replaced while the node runs (<see cref="AuthFileReloader"/>); whether tokens
/// are required at all is fixed when the node starts.
/// </summary>
public sealed class ClientAccess(ClientUsers? users, bool tlsOnly, bool peerTls = false)
{
    private volatile ClientUsers? _users = users;

    /// <summary>Set on an UNAUTHENTICATED reply to a plain-text call on a node that serves clients over TLS only.</summary>
    public const string TlsRequiredTrailer = "raftps-tls-required";
    public const string AuthorizationHeader = "authorization";
    private const string BearerPrefix = "Bearer ";

    public static readonly ClientAccess Open = new(null, false);

    public bool AuthEnabled => _users is not null;

    /// <summary>The users calls are checked against now.</summary>
    public ClientUsers? Users => _users;

    /// <summary>Checks the calls that start from now on against <paramref name="replacement"/>.</summary>
    /// <exception cref="InvalidOperationException">This node started without an auth file.</exception>
    public void ReplaceUsers(ClientUsers replacement)
    {
        if (_users is null) throw new InvalidOperationException("this node started without --auth-file: it takes no users");
        _users = replacement;
    }

    /// <summary>Client calls are served over TLS only (plain-text connections carry peer calls and the public calls).</summary>
    public bool TlsOnly => tlsOnly;
    /// <summary>The path between nodes is peer TLS: calls (and tokens) may be forwarded over it.</summary>
    public bool PeerTls => peerTls;

    /// <summary>Refuses the call (an RpcException) unless its connection and credentials allow the method.</summary>
    public void Check(ServerCallContext context)
    {
        var needed = ClientMethodRoles.ForPath(context.Method, out var isClientCall);
        if (!isClientCall) return;
        if (needed is not { } role)
            throw new RpcException(new Status(StatusCode.PermissionDenied, $"{context.Method} is not mapped to a role: refused"));
        if (role == ClientRole.Public) return;
        if (tlsOnly && !OverTls(context))
            throw new RpcException(new Status(StatusCode.Unauthenticated, "this node serves clients over TLS only; connect with TLS (Connect-RaftNode -UseTls)"),
                new Metadata { { TlsRequiredTrailer, "1" } });
        if (_users is not { } current) return;
        var user = current.Find(BearerToken(context.RequestHeaders))
            ?? throw new RpcException(new Status(StatusCode.Unauthenticated,
                "no valid token: this node requires one (an 'authorization: Bearer TOKEN' header; Connect-RaftNode -Token or -Credential)"));
        if (user.Role < role)
            throw new RpcException(new Status(StatusCode.PermissionDenied,
                $"{ClientMethodRoles.MethodName(context.Method)} needs the {ClientRoleNames.Name(role)} role; user '{user.Name}' has {ClientRoleNames.Name(user.Role)}"));
    }

    private static ReadOnlySpan<char> BearerToken(Metadata headers)
    {
        var value = headers.GetValue(AuthorizationHeader);
        if (value is null || !value.StartsWith(BearerPrefix, StringComparison.OrdinalIgnoreCase)) return default;
        return value.AsSpan(BearerPrefix.Length).Trim();
    }

    /// <summary>Client TLS, or a call a peer forwarded over peer TLS (the client's own connection to that peer was TLS).</summary>
    private static bool OverTls(ServerCallContext context)
    {
        var features = context.GetHttpContext().Features;
        return features.Get<ITlsConnectionFeature>() is not null || features.Get<Transport.IPeerTlsFeature>() is not null;
    }
}
