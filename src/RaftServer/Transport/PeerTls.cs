using System.Formats.Asn1;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using RaftServer.Cluster;

namespace RaftServer.Transport;

/// <summary>
/// Peer TLS (--peer-cert-file, --peer-key-file, --peer-ca-file; docs/security.md, "Peer TLS"):
/// this node's certificate, the CA its peers' certificates must chain to, and the checks of a
/// peer's certificate. A node certificate names its member with a subject alternative name URI
/// <c>raftps://node/ID</c> (exactly one), so a peer proves which member it is: the hello of a
/// message connection must name the certificate's node, and a connecting node refuses a peer whose
/// certificate names another node than the member it called.
/// <para>
/// Everything a node sends its peers goes over connections that open with
/// <see cref="PeerWire.TlsPreface"/>: the accepting node echoes it (a node without peer TLS answers
/// with its plain hello instead, so the connecting node can say what is wrong), then the TLS
/// handshake runs with both certificates. Inside, a message connection goes on with the hello and
/// the frames (<see cref="PeerWire"/>); a gRPC connection (forwarded calls, snapshot uploads) with
/// HTTP/2 (<see cref="ConfigureHandler"/>).
/// </para>
/// </summary>
public sealed class PeerTls : IDisposable
{
    /// <summary>The scheme and host of the URI that names a node in its certificate: <c>raftps://node/ID</c>.</summary>
    public const string NodeUriPrefix = "raftps://node/";
    /// <summary>The preface echo and the TLS handshake together must finish within this.</summary>
    public static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(5);

    private readonly SslStreamCertificateContext _context;
    private readonly CertificateTrust _trust;
    private readonly X509Certificate2Collection _intermediates;

    private PeerTls(int self, X509Certificate2 certificate, X509Certificate2Collection intermediates, CertificateTrust trust)
    {
        Self = self;
        Certificate = certificate;
        _intermediates = intermediates;
        _trust = trust;
        _context = SslStreamCertificateContext.Create(certificate, intermediates, offline: true);
    }

    public int Self { get; }
    public X509Certificate2 Certificate { get; }

    /// <summary>Loads and checks this node's peer certificate: it must chain to one of the CAs of
    /// <paramref name="caFile"/> (a PEM bundle: every certificate in it is trusted), be valid now,
    /// list both TLS client and server authentication, and name this node.</summary>
    /// <exception cref="InvalidDataException">A file is missing or unreadable, or the certificate does not fit: the message names the option.</exception>
    public static PeerTls Load(string certFile, string keyFile, string caFile, int self)
    {
        X509Certificate2 certificate;
        var all = new X509Certificate2Collection();
        try
        {
            certificate = X509Certificate2.CreateFromPemFile(certFile, keyFile);
            all.ImportFromPemFile(certFile);
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new InvalidDataException($"--peer-cert-file {certFile} / --peer-key-file {keyFile}: {e.Message}");
        }
        if (!certificate.HasPrivateKey)
            throw new InvalidDataException($"--peer-key-file {keyFile}: holds no private key for the certificate of {certFile}");
        if (OperatingSystem.IsWindows())
        {
            // SChannel cannot use the ephemeral key of a PEM import: give it a persisted-in-memory one.
            using var ephemeral = certificate;
            certificate = X509CertificateLoader.LoadPkcs12(ephemeral.Export(X509ContentType.Pkcs12), null);
        }
        var intermediates = new X509Certificate2Collection();
        foreach (var c in all)
            if (c.Thumbprint != certificate.Thumbprint) intermediates.Add(c);
        // A peer certificate serves both ways (this node calls its peers and is called by them), so it
        // must be made for both, on both sides of every connection (as etcd requires of peer certificates).
        var trust = CertificateTrust.Load("--peer-ca-file", caFile, intermediates, CertificateTrust.ServerAuthOid, CertificateTrust.ClientAuthOid);
        var tls = new PeerTls(self, certificate, intermediates, trust);
        var problem = trust.Check(certificate, null, out _);
        if (problem is null && NodeIds(certificate) is var ids && (ids.Count != 1 || ids[0] != self))
            problem = ids.Count == 0 ? $"names no node (a subject alternative name URI {NodeUriPrefix}{self}; New-RaftCertificate Node -NodeId {self})"
                : $"names {NodesText(ids)}, not this node ({self})";
        if (problem is not null)
        {
            var message = $"--peer-cert-file {certFile}: the certificate ({Describe(certificate)}) {problem}";
            tls.Dispose();
            throw new InvalidDataException(message);
        }
        return tls;
    }

    /// <summary>The node ids a certificate names (its <c>raftps://node/ID</c> subject alternative names).</summary>
    public static IReadOnlyList<int> NodeIds(X509Certificate2 certificate)
    {
        var ids = new List<int>();
        foreach (var extension in certificate.Extensions)
        {
            if (extension.Oid?.Value != "2.5.29.17") continue;
            try
            {
                var reader = new AsnReader(extension.RawData, AsnEncodingRules.DER);
                var names = reader.ReadSequence();
                var uriTag = new Asn1Tag(TagClass.ContextSpecific, 6);
                while (names.HasData)
                {
                    if (names.PeekTag() != uriTag)
                    {
                        names.ReadEncodedValue();
                        continue;
                    }
                    var uri = names.ReadCharacterString(UniversalTagNumber.IA5String, uriTag);
                    if (uri.StartsWith(NodeUriPrefix, StringComparison.OrdinalIgnoreCase)
                        && int.TryParse(uri.AsSpan(NodeUriPrefix.Length), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id))
                        ids.Add(id);
                }
            }
            catch (AsnContentException)
            {
                // a malformed extension names nothing
            }
        }
        return ids;
    }

    /// <summary>Why a peer's certificate is refused, or null when it is accepted: it must chain to a CA
    /// of --peer-ca-file (through the intermediates it sent, <paramref name="sent"/>, or this node's
    /// own), be valid now, list both TLS server and client authentication, and name exactly one node
    /// (<paramref name="expected"/> when given). <paramref name="nodeId"/> is the node it names.</summary>
    public string? CheckPeer(X509Certificate? presented, int? expected, out int nodeId, X509Certificate2Collection? sent = null) =>
        CheckPeer(presented, expected, out nodeId, out _, sent);

    /// <param name="kind">What is wrong, from a small fixed set (for rate-limiting log lines on it, never on what the peer wrote).</param>
    public string? CheckPeer(X509Certificate? presented, int? expected, out int nodeId, out string kind, X509Certificate2Collection? sent = null)
    {
        nodeId = -1;
        kind = "none";
        if (presented is null) return "it sent no certificate (peer TLS needs one on both sides)";
        var certificate = presented as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(presented.GetRawCertData());
        var problem = _trust.Check(certificate, sent, out var flags);
        kind = flags.ToString();
        if (problem is null)
        {
            var ids = NodeIds(certificate);
            kind = "names";
            if (ids.Count != 1)
                problem = ids.Count == 0 ? $"names no node (no {NodeUriPrefix}ID subject alternative name)" : $"names {NodesText(ids)}: a node certificate names one node";
            else if (expected is { } want && ids[0] != want)
                problem = $"names node {ids[0]}, not node {want}";
            else
                nodeId = ids[0];
        }
        return problem is null ? null : $"its certificate ({Describe(certificate)}) {problem}";
    }

    private static string NodesText(IReadOnlyList<int> ids) => ids.Count == 1 ? $"node {ids[0]}" : $"nodes {string.Join(", ", ids)}";

    /// <summary>Subject, issuer and validity, for log lines.</summary>
    public static string Describe(X509Certificate2 certificate) =>
        $"subject {Hosting.Printable.Escape(certificate.Subject)}, issuer {Hosting.Printable.Escape(certificate.Issuer)}, valid until {certificate.NotAfter.ToUniversalTime():yyyy-MM-dd HH:mm} UTC";

    /// <summary>The options of the accepting side of one connection; <paramref name="verdict"/> receives the check of the peer's certificate.</summary>
    public SslServerAuthenticationOptions ServerOptions(PeerCertificateVerdict verdict) => new()
    {
        ServerCertificateContext = _context,
        ClientCertificateRequired = true,
        EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        // The platform builds a chain before the callback: with this policy it fetches nothing either.
        CertificateChainPolicy = _trust.Policy(),
        RemoteCertificateValidationCallback = (_, certificate, chain, _) => Judge(verdict, certificate, chain, expected: null),
    };

    /// <summary>The options of the connecting side, calling node <paramref name="peer"/> (any member when null).</summary>
    private SslClientAuthenticationOptions ClientOptions(int? peer, PeerCertificateVerdict verdict) => new()
    {
        TargetHost = peer is { } id ? "raftps-node-" + id : "raftps-node",
        ClientCertificateContext = _context,
        EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        CertificateChainPolicy = _trust.Policy(),
        RemoteCertificateValidationCallback = (_, certificate, chain, _) => Judge(verdict, certificate, chain, peer),
    };

    /// <summary>
    /// The certificate check of a handshake, recorded in <paramref name="verdict"/>. It runs inside
    /// the TLS stack's callback: anything it throws (a certificate it cannot parse) is a refusal with
    /// the reason recorded, never an exception out of the handshake.
    /// </summary>
    internal bool Judge(PeerCertificateVerdict verdict, X509Certificate? certificate, X509Chain? chain, int? expected)
    {
        try
        {
            // The platform's chain holds the certificates the peer sent (its intermediates) in its extra store.
            verdict.Problem = CheckPeer(certificate, expected, out var id, out var kind, chain?.ChainPolicy.ExtraStore);
            verdict.NodeId = id;
            verdict.Kind = kind;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            verdict.Problem = $"its certificate could not be checked ({e.GetType().Name}: {e.Message})";
            verdict.NodeId = -1;
            verdict.Kind = "error";
        }
        return verdict.Problem is null;
    }

    /// <summary>
    /// The connecting side on a connected stream: the TLS preface, the peer's echo, the handshake.
    /// </summary>
    /// <exception cref="PeerTlsRefusedException">The peer does not use peer TLS, or one side refused the other's
    /// certificate: the message says which, for the log.</exception>
    public Task<SslStream> ConnectAsync(Stream network, NodeAddress peer, CancellationToken ct) => ConnectAsync(network, peer, null, ct);

    /// <param name="verdict">Receives the node the peer's certificate names; with <paramref name="peer"/>'s
    /// id negative, any node's certificate of the cluster's CA is accepted (a node joining through an address).</param>
    public async Task<SslStream> ConnectAsync(Stream network, NodeAddress peer, PeerCertificateVerdict? verdict, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(HandshakeTimeout);
        await network.WriteAsync(PeerWire.TlsPreface.ToArray(), timeout.Token);
        var echo = new byte[PeerWire.TlsPreface.Length];
        var got = 0;
        try
        {
            while (got < echo.Length)
            {
                var n = await network.ReadAsync(echo.AsMemory(got), timeout.Token);
                if (n == 0) break;
                got += n;
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new IOException($"{Name(peer)} did not answer the peer TLS preface within {(int)HandshakeTimeout.TotalMilliseconds} ms");
        }
        if (got < echo.Length || !echo.AsSpan().SequenceEqual(PeerWire.TlsPreface))
        {
            // A node without peer TLS answers with its plain hello (a small length first), then closes.
            if (got > 0 && echo[0] <= PeerWire.MaxHelloBytes)
                throw new PeerTlsRefusedException($"Refused the connection to {Name(peer)}: it does not use peer TLS (it answered in plain text); " +
                    "give every node of the cluster --peer-cert-file, --peer-key-file and --peer-ca-file, or none of them", "plain");
            throw new IOException(got == 0
                ? $"{Name(peer)} closed the connection before it answered the peer TLS preface"
                : $"{Name(peer)} answered the peer TLS preface with something else");
        }
        verdict ??= new PeerCertificateVerdict();
        var ssl = new SslStream(network, leaveInnerStreamOpen: false);
        try
        {
            await ssl.AuthenticateAsClientAsync(ClientOptions(peer.Id >= 0 ? peer.Id : null, verdict), timeout.Token);
            return ssl;
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            await ssl.DisposeAsync();
            if (verdict.Problem is { } problem)
                throw new PeerTlsRefusedException($"Refused the peer TLS connection to {Name(peer)}: {problem}", "certificate");
            throw new PeerTlsRefusedException($"The peer TLS handshake with {Name(peer)} failed: {e.Message} " +
                "(that node refused this node's certificate if its log says so: issued by another CA than its --peer-ca-file, expired, or naming another node)", "handshake");
        }
    }

    /// <summary>How log lines name the node called: by id, or by address alone (a joining node calls an address).</summary>
    private static string Name(NodeAddress peer) => peer.Id >= 0 ? $"node {peer.Id} at {peer.Authority}" : $"the node at {peer.Authority}";

    /// <summary>Makes the gRPC channel's connections to node <paramref name="peer"/> peer TLS connections: the
    /// channel speaks HTTP/2 (http://, prior knowledge) over the TLS stream this returns.</summary>
    /// <param name="verdict">Receives the node the certificate of the last connection made names (for a joining node, which calls an address, not a member).</param>
    /// <param name="connect">Opens the TCP connection (default: one plain attempt, bounded by the handler's ConnectTimeout).</param>
    public void ConfigureHandler(SocketsHttpHandler handler, NodeAddress peer, PeerCertificateVerdict? verdict = null,
        Func<DnsEndPoint, CancellationToken, Task<Socket>>? connect = null)
    {
        connect ??= (endpoint, ct) => PeerSocketConnector.ConnectOnceAsync(endpoint, ct);
        handler.ConnectCallback = async (context, ct) =>
        {
            var stream = new NetworkStream(await connect(context.DnsEndPoint, ct), ownsSocket: true);
            try
            {
                return await ConnectAsync(stream, peer, verdict, ct);
            }
            catch
            {
                await stream.DisposeAsync();
                throw;
            }
        };
    }

    /// <summary>The startup line.</summary>
    public string Describe() =>
        $"Peer TLS: on (certificate {Hosting.Printable.Escape(Certificate.Subject)} naming node {Self}, valid until " +
        $"{Certificate.NotAfter.ToUniversalTime():yyyy-MM-dd HH:mm} UTC; peers' certificates issued by {_trust.RootsText})";

    public void Dispose()
    {
        Certificate.Dispose();
        _trust.Dispose();
        foreach (var c in _intermediates) c.Dispose();
    }
}

/// <summary>The outcome of the check of a peer's certificate during one handshake.</summary>
public sealed class PeerCertificateVerdict
{
    /// <summary>Why the certificate was refused; null when accepted (or not checked yet).</summary>
    public string? Problem { get; set; }
    /// <summary>What was wrong, from a small fixed set (<see cref="PeerTls.CheckPeer(X509Certificate?, int?, out int, out string, X509Certificate2Collection?)"/>).</summary>
    public string Kind { get; set; } = "none";
    /// <summary>The node the accepted certificate names.</summary>
    public int NodeId { get; set; } = -1;
}

/// <summary>A peer TLS connection that cannot work as configured (a plain peer, a refused certificate).</summary>
public sealed class PeerTlsRefusedException(string message, string kind) : IOException(message)
{
    /// <summary>What went wrong, for rate-limiting the log line ("plain", "certificate", "handshake").</summary>
    public string Kind { get; } = kind;
}
