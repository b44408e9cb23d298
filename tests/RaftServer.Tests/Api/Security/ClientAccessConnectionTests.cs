using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using RaftServer.Api;
using RaftServer.Api.Security;
using RaftServer.Transport;

namespace RaftServer.Tests.Api.Security;

/// <summary>
/// What the connection a call came on tells <see cref="ClientAccess"/>: client TLS with a client
/// certificate (certificate users), or peer TLS (calls a member forwarded).
/// </summary>
public sealed class ClientAccessConnectionTests
{
    private sealed record PeerTlsFeature(int NodeId) : IPeerTlsFeature;

    private sealed class TlsFeature(X509Certificate2? certificate) : ITlsConnectionFeature
    {
        public X509Certificate2? ClientCertificate { get; set; } = certificate;
        public Task<X509Certificate2?> GetClientCertificateAsync(CancellationToken cancellationToken) => Task.FromResult(ClientCertificate);
    }

    private static readonly ClientUsers Users = ClientUsers.Parse([
        $"ci write {Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes("t")))}",
        "alice write certificate",
        "bob read Certificate",
    ], "users");

    private static X509Certificate2 Certificate(string commonName)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256);
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
    }

    private static RpcException? Refusal(ClientAccess access, string method, HttpContext http, Metadata? headers = null)
    {
        try
        {
            access.Check(new TestCallContext($"/raftps.RaftClient/{method}", headers ?? new Metadata(), http));
            return null;
        }
        catch (RpcException e)
        {
            return e;
        }
    }

    private static HttpContext OverClientTls(X509Certificate2? certificate)
    {
        var http = new DefaultHttpContext();
        http.Features.Set<ITlsConnectionFeature>(new TlsFeature(certificate));
        return http;
    }

    private static HttpContext OverPeerTls()
    {
        var http = new DefaultHttpContext();
        http.Features.Set<IPeerTlsFeature>(new PeerTlsFeature(2));
        return http;
    }

    private static ClientAccess CertificateAccess() => new(Users, tlsOnly: true, peerTls: true, clientCertificates: true);

    [Fact]
    public void A_call_a_member_forwarded_over_peer_TLS_counts_as_a_TLS_call() =>
        Assert.Null(Refusal(new ClientAccess(null, tlsOnly: true), "Set", OverPeerTls(), new Metadata { { ClientService.ForwardedHeader, "1" } }));

    [Fact]
    public void A_call_of_its_own_on_a_peer_TLS_connection_does_not_count_as_a_TLS_call() =>
        Assert.Equal(StatusCode.Unauthenticated, Refusal(new ClientAccess(null, tlsOnly: true), "Set", OverPeerTls())?.StatusCode);

    [Fact]
    public void A_client_certificate_naming_a_certificate_user_gets_that_users_role()
    {
        using var alice = Certificate("alice");
        using var bob = Certificate("bob");
        Assert.Null(Refusal(CertificateAccess(), "Set", OverClientTls(alice)));
        var e = Refusal(CertificateAccess(), "Set", OverClientTls(bob));
        Assert.Equal(StatusCode.PermissionDenied, e?.StatusCode);
        Assert.Contains("user 'bob' has read", e!.Status.Detail);
    }

    [Fact]
    public void A_client_certificate_naming_no_certificate_user_or_a_token_user_is_refused()
    {
        using var mallory = Certificate("mallory");
        using var ci = Certificate("ci");
        Assert.Equal(StatusCode.Unauthenticated, Refusal(CertificateAccess(), "Get", OverClientTls(mallory))?.StatusCode);
        Assert.Equal(StatusCode.Unauthenticated, Refusal(CertificateAccess(), "Get", OverClientTls(ci))?.StatusCode);
        Assert.Equal(StatusCode.Unauthenticated, Refusal(CertificateAccess(), "Get", OverClientTls(null))?.StatusCode);
    }

    [Fact]
    public void A_token_decides_when_there_is_one()
    {
        using var alice = Certificate("alice");
        var wrongToken = new Metadata { { "authorization", "Bearer nope" } };
        Assert.Equal(StatusCode.Unauthenticated, Refusal(CertificateAccess(), "Get", OverClientTls(alice), wrongToken)?.StatusCode);
    }

    [Fact]
    public void The_user_a_member_names_is_trusted_over_peer_TLS_only()
    {
        var named = new Metadata { { ClientService.ForwardedHeader, "1" }, { ClientAccess.ForwardedUserHeader, "alice" } };
        Assert.Null(Refusal(CertificateAccess(), "Set", OverPeerTls(), named));
        using var mallory = Certificate("mallory");
        Assert.Equal(StatusCode.Unauthenticated, Refusal(CertificateAccess(), "Set", OverClientTls(mallory), named)?.StatusCode);
        var notForwarded = new Metadata { { ClientAccess.ForwardedUserHeader, "alice" } };
        Assert.Equal(StatusCode.Unauthenticated, Refusal(CertificateAccess(), "Set", OverPeerTls(), notForwarded)?.StatusCode);
    }

    [Fact]
    public void Certificate_users_need_a_node_that_takes_client_certificates()
    {
        var e = Assert.Throws<InvalidDataException>(() => new ClientAccess(Users, tlsOnly: true, clientCertificates: false).ReplaceUsers(Users));
        Assert.Contains("alice, bob authenticate by certificate", e.Message);
    }
}
