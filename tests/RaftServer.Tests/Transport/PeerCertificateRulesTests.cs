using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using RaftServer.Api.Security;
using RaftServer.Transport;

namespace RaftServer.Tests.Transport;

/// <summary>
/// Which certificates peer TLS and client TLS accept (docs/security.md, "Which certificates are
/// accepted"): every CA of a CA file, chains through the intermediates the peer sends, both TLS
/// usages on a peer certificate and an extended key usage extension always, nothing downloaded, and
/// a certificate that cannot be checked is a refusal with its reason.
/// </summary>
public sealed class PeerCertificateRulesTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "raftps-certrules-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly TestPki _old = TestPki.Root("old CA");
    private readonly TestPki _new = TestPki.Root("new CA");

    public void Dispose()
    {
        _old.Dispose();
        _new.Dispose();
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>Node 0's peer TLS with a certificate of <paramref name="issuer"/> and the CAs of <paramref name="caFile"/>.</summary>
    private PeerTls Node0(TestPki issuer, string caFile, params X509Certificate2[] chain)
    {
        using var certificate = issuer.Node(0);
        var (cert, key) = TestPki.Write(_folder, "node-0-" + Guid.NewGuid().ToString("N")[..6], certificate, chain);
        return PeerTls.Load(cert, key, caFile, 0);
    }

    [Fact]
    public void Every_CA_of_a_bundle_is_trusted_not_only_the_first()
    {
        var bundle = TestPki.WriteBundle(_folder, "bundle", _old, _new);
        using var tls = Node0(_old, bundle);
        using var fromNew = _new.Node(1);
        using var fromOld = _old.Node(2);
        Assert.Null(tls.CheckPeer(fromNew, null, out var id));
        Assert.Equal(1, id);
        Assert.Null(tls.CheckPeer(fromOld, null, out id));
        Assert.Equal(2, id);
        Assert.Contains("CN=old CA and CN=new CA", tls.Describe());
        using var foreign = TestPki.Root("foreign CA");
        using var other = foreign.Node(1);
        Assert.Contains("is not issued by --peer-ca-file (CN=old CA and CN=new CA)", tls.CheckPeer(other, null, out _));
    }

    [Fact]
    public void A_node_may_start_with_a_certificate_of_the_second_CA_of_its_bundle()
    {
        var bundle = TestPki.WriteBundle(_folder, "bundle", _old, _new);
        using var tls = Node0(_new, bundle);
        Assert.Equal(0, tls.Self);
    }

    [Fact]
    public void A_chain_is_built_through_the_intermediates_the_peer_sent()
    {
        var caFile = TestPki.WriteBundle(_folder, "root", _new);
        using var tls = Node0(_new, caFile);
        using var intermediate = _new.Intermediate("issuing CA");
        using var leaf = intermediate.Node(1);
        Assert.Contains("is not issued by --peer-ca-file", tls.CheckPeer(leaf, null, out _));
        Assert.Null(tls.CheckPeer(leaf, null, out var id, [intermediate.Certificate]));
        Assert.Equal(1, id);
    }

    [Fact]
    public void A_peer_certificate_must_list_both_TLS_usages_in_an_extended_key_usage_extension()
    {
        var caFile = TestPki.WriteBundle(_folder, "root", _new);
        using var tls = Node0(_new, caFile);
        using var clientOnly = _new.Leaf("client-only", 1, [TestPki.ClientAuth]);
        using var serverOnly = _new.Leaf("server-only", 1, [TestPki.ServerAuth]);
        using var none = _new.Leaf("no-eku", 1, null);
        // A connecting peer's (TLS client's) certificate is checked for both usages too: it is the same
        // certificate the peer serves with.
        Assert.Contains("is not made for TLS server authentication", tls.CheckPeer(clientOnly, null, out _));
        Assert.Contains("is not made for TLS client authentication", tls.CheckPeer(serverOnly, null, out _));
        Assert.Contains("has no extended key usage extension: it must list TLS server and client authentication", tls.CheckPeer(none, null, out _));
    }

    [Fact]
    public void A_node_refuses_to_start_with_a_peer_certificate_without_extended_key_usages()
    {
        var caFile = TestPki.WriteBundle(_folder, "root", _new);
        using var none = _new.Leaf("no-eku", 0, null);
        var (cert, key) = TestPki.Write(_folder, "no-eku", none);
        var e = Assert.Throws<InvalidDataException>(() => PeerTls.Load(cert, key, caFile, 0));
        Assert.Contains("has no extended key usage extension", e.Message);
    }

    [Fact]
    public void A_certificate_the_check_cannot_read_is_a_refusal_with_its_reason_not_an_exception_out_of_the_handshake()
    {
        var caFile = TestPki.WriteBundle(_folder, "root", _new);
        using var tls = Node0(_new, caFile);
        var verdict = new PeerCertificateVerdict();
#pragma warning disable SYSLIB0026 // an empty certificate: what no parser would make, so the check throws
        using var empty = new X509Certificate2();
#pragma warning restore SYSLIB0026
        var options = tls.ServerOptions(verdict);
        Assert.False(options.RemoteCertificateValidationCallback!(this, empty, null, SslPolicyErrors.None));
        Assert.StartsWith("its certificate could not be checked (", verdict.Problem);
        Assert.Equal("error", verdict.Kind);
        Assert.Equal(-1, verdict.NodeId);
    }

    [Fact]
    public async Task The_handshake_never_downloads_an_issuer_a_certificate_names()
    {
        var caFile = TestPki.WriteBundle(_folder, "root", _new);
        using var tls = Node0(_new, caFile);
        using var intermediate = _new.Intermediate("issuing CA");
        using var aiaServer = new TcpListener(IPAddress.Loopback, 0);
        aiaServer.Start();
        var url = $"http://127.0.0.1:{((IPEndPoint)aiaServer.LocalEndpoint).Port}/issuer.cer";
        // Issued by the intermediate, which it does not send: only a download could complete its chain.
        using var leaf = intermediate.Leaf("node-1", 1, [TestPki.ServerAuth, TestPki.ClientAuth], url);
        var verdict = await HandshakeAsync(tls, leaf);
        Assert.Contains("is not issued by --peer-ca-file", verdict.Problem);
        Assert.False(aiaServer.Pending(), $"the node fetched {url}");
    }

    [Fact]
    public async Task In_a_handshake_the_intermediates_the_peer_sends_complete_its_chain()
    {
        var caFile = TestPki.WriteBundle(_folder, "root", _new);
        using var tls = Node0(_new, caFile);
        using var intermediate = _new.Intermediate("issuing CA");
        using var leaf = intermediate.Node(1);
        var verdict = await HandshakeAsync(tls, leaf, intermediate.Certificate);
        Assert.Null(verdict.Problem);
        Assert.Equal(1, verdict.NodeId);
    }

    [Fact]
    public void Client_TLS_trusts_every_CA_of_its_bundle_uses_sent_intermediates_and_needs_client_authentication_listed()
    {
        var bundle = TestPki.WriteBundle(_folder, "clients", _old, _new);
        using var server = _new.Node(0);
        var (cert, key) = TestPki.Write(_folder, "server", server);
        using var tls = ClientTls.Load(cert, key, bundle);
        using var fromNew = _new.Leaf("alice", null, [TestPki.ClientAuth]);
        using var fromOld = _old.Leaf("bob", null, [TestPki.ClientAuth]);
        Assert.Null(tls.CheckClientCertificate(fromNew));
        Assert.Null(tls.CheckClientCertificate(fromOld));
        using var intermediate = _new.Intermediate("issuing CA");
        using var viaIntermediate = intermediate.Leaf("carol", null, [TestPki.ClientAuth]);
        Assert.Contains("is not issued by --client-ca-file", tls.CheckClientCertificate(viaIntermediate));
        Assert.Null(tls.CheckClientCertificate(viaIntermediate, [intermediate.Certificate]));
        using var none = _new.Leaf("dave", null, null);
        Assert.Contains("has no extended key usage extension: it must list TLS client authentication", tls.CheckClientCertificate(none));
        using var serverOnly = _new.Leaf("erin", null, [TestPki.ServerAuth]);
        Assert.Contains("is not made for TLS client authentication", tls.CheckClientCertificate(serverOnly));
        Assert.Contains("issued by CN=old CA and CN=new CA", tls.Describe());
    }

    /// <summary>A TLS handshake with <paramref name="tls"/>'s accepting side, the client presenting <paramref name="certificate"/> and <paramref name="chain"/>.</summary>
    private static async Task<PeerCertificateVerdict> HandshakeAsync(PeerTls tls, X509Certificate2 certificate, params X509Certificate2[] chain)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        using var accepted = await listener.AcceptTcpClientAsync();
        await using var serverSsl = new SslStream(accepted.GetStream());
        await using var clientSsl = new SslStream(client.GetStream());
        var verdict = new PeerCertificateVerdict();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var serverSide = serverSsl.AuthenticateAsServerAsync(tls.ServerOptions(verdict), timeout.Token);
        var clientSide = clientSsl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "raftps-node-0",
            ClientCertificateContext = SslStreamCertificateContext.Create(certificate, [.. chain], offline: true),
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        }, timeout.Token);
        try
        {
            await serverSide;
        }
        catch (AuthenticationException)
        {
            accepted.Dispose(); // refused (the verdict says why): the client's side ends too
        }
        try
        {
            await clientSide;
        }
        catch (Exception e) when (e is AuthenticationException or IOException)
        {
        }
        return verdict;
    }
}
