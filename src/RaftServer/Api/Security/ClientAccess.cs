using System.Security.Cryptography.X509Certificates;
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
/// <param name="clientCertificates">Clients present certificates of --client-ca-file (which users may authenticate with).</param>
public sealed class ClientAccess(ClientUsers? users, bool tlsOnly, bool peerTls = false, bool clientCertificates = false)
{
    private volatile ClientUsers? _users = users;

    /// <summary>
    /// On a call a member forwards over peer TLS: the user the member authenticated by its client
    /// certificate (the leader cannot see that certificate). Trusted only on a peer TLS connection,
    /// where only members can call.
    /// </summary>
    public const string ForwardedUserHeader = "raftps-forwarded-user";
    /// <summary>Where <see cref="Check"/> leaves the call's user (<see cref="ServerCallContext.UserState"/>) for forwarding.</summary>
    public static readonly object UserKey = new();

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
    /// <exception cref="InvalidDataException">It has users who authenticate by certificate and this node takes no client certificates.</exception>
    public void ReplaceUsers(ClientUsers replacement)
    {
        if (_users is null) throw new InvalidOperationException("this node started without --auth-file: it takes no users");
        CheckCertificateUsers(replacement, clientCertificates);
        _users = replacement;
    }

    /// <exception cref="InvalidDataException">Users authenticate by certificate on a node that takes no client certificates.</exception>
    public static void CheckCertificateUsers(ClientUsers users, bool clientCertificates)
    {
        if (users.CertificateUsers.Count > 0 && !clientCertificates)
            throw new InvalidDataException($"--auth-file: {string.Join(", ", users.CertificateUsers)} authenticate by certificate, " +
                "which needs client certificates (--cert-file, --key-file and --client-ca-file)");
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
        var token = BearerToken(context.RequestHeaders);
        var user = (token.IsEmpty ? CertificateUser(context, current) : current.Find(token))
            ?? throw new RpcException(new Status(StatusCode.Unauthenticated, token.IsEmpty && current.CertificateUsers.Count > 0
                ? "no valid token or client certificate: this node requires a token (an 'authorization: Bearer TOKEN' header; Connect-RaftNode -Token or -Credential) " +
                  "or a client certificate whose name the auth file lists as a certificate user"
                : "no valid token: this node requires one (an 'authorization: Bearer TOKEN' header; Connect-RaftNode -Token or -Credential)"));
        context.UserState[UserKey] = user;
        if (user.Role < role)
            throw new RpcException(new Status(StatusCode.PermissionDenied,
                $"{ClientMethodRoles.MethodName(context.Method)} needs the {ClientRoleNames.Name(role)} role; user '{user.Name}' has {ClientRoleNames.Name(user.Role)}"));
    }

    /// <summary>
    /// The certificate user of a call without a token: the one its client certificate's common name
    /// names (the TLS handshake checked it against --client-ca-file), or, on a call a member forwarded
    /// over peer TLS, the one that member names.
    /// </summary>
    private static ClientUser? CertificateUser(ServerCallContext context, ClientUsers users)
    {
        if (users.CertificateUsers.Count == 0) return null;
        var features = context.GetHttpContext().Features;
        if (features.Get<Transport.IPeerTlsFeature>() is not null)
            return context.RequestHeaders.GetValue(ClientService.ForwardedHeader) is not null
                && context.RequestHeaders.GetValue(ForwardedUserHeader) is { } name
                ? users.FindByCertificate(name)
                : null;
        var certificate = features.Get<ITlsConnectionFeature>()?.ClientCertificate;
        return certificate is null ? null : users.FindByCertificate(certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false));
    }

    private static ReadOnlySpan<char> BearerToken(Metadata headers)
    {
        var value = headers.GetValue(AuthorizationHeader);
        if (value is null || !value.StartsWith(BearerPrefix, StringComparison.OrdinalIgnoreCase)) return default;
        return value.AsSpan(BearerPrefix.Length).Trim();
    }

    /// <summary>
    /// Client TLS, or a call a member forwarded over peer TLS: that member served its client over TLS
    /// too, as every member of a cluster has the same client security options (docs/security.md).
    /// A call of another kind on a peer TLS connection does not count.
    /// </summary>
    private static bool OverTls(ServerCallContext context)
    {
        var features = context.GetHttpContext().Features;
        return features.Get<ITlsConnectionFeature>() is not null
            || (features.Get<Transport.IPeerTlsFeature>() is not null && context.RequestHeaders.GetValue(ClientService.ForwardedHeader) is not null);
    }
}
