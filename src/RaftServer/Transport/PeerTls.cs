using System.Formats.Asn1;
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
    private const string ServerAuthOid = "1.3.6.1.5.5.7.3.1";
    private const string ClientAuthOid = "1.3.6.1.5.5.7.3.2";
    /// <summary>The preface echo and the TLS handshake together must finish within this.</summary>
    public static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(5);

    private readonly SslStreamCertificateContext _context;
    private readonly X509Certificate2 _ca;
    private readonly X509Certificate2Collection _intermediates;

    private PeerTls(int self, X509Certificate2 certificate, X509Certificate2Collection intermediates, X509Certificate2 ca)
    {
        Self = self;
        Certificate = certificate;
        _intermediates = intermediates;
        _ca = ca;
        _context = SslStreamCertificateContext.Create(certificate, intermediates, offline: true);
    }

    public int Self { get; }
    public X509Certificate2 Certificate { get; }

    /// <summary>Loads and checks this node's peer certificate: it must chain to the CA, be valid now,
    /// be made for TLS client and server authentication, and name this node.</summary>
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
        X509Certificate2 ca;
        try
        {
            var cas = new X509Certificate2Collection();
            cas.ImportFromPemFile(caFile);
            ca = cas.Count > 0 ? cas[0] : throw new InvalidDataException($"--peer-ca-file {caFile}: holds no certificate");
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new InvalidDataException($"--peer-ca-file {caFile}: {e.Message}");
        }
        var intermediates = new X509Certificate2Collection();
        foreach (var c in all)
            if (c.Thumbprint != certificate.Thumbprint) intermediates.Add(c);
        var tls = new PeerTls(self, certificate, intermediates, ca);
        var problem = tls.Check(certificate, ServerAuthOid) ?? tls.Check(certificate, ClientAuthOid);
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

    /// <summary>Why a peer's certificate is refused, or null when it is accepted: it must chain to
    /// --peer-ca-file, be valid now, be made for the role the peer plays, and name exactly one node
    /// (<paramref name="expected"/> when given). <paramref name="nodeId"/> is the node it names.</summary>
    public string? CheckPeer(X509Certificate? presented, bool peerIsServer, int? expected, out int nodeId) =>
        CheckPeer(presented, peerIsServer, expected, out nodeId, out _);

    /// <param name="kind">What is wrong, from a small fixed set (for rate-limiting log lines on it, never on what the peer wrote).</param>
    public string? CheckPeer(X509Certificate? presented, bool peerIsServer, int? expected, out int nodeId, out string kind)
    {
        nodeId = -1;
        kind = "none";
        if (presented is null) return "it sent no certificate (peer TLS needs one on both sides)";
        var certificate = presented as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(presented.GetRawCertData());
        var problem = Check(certificate, peerIsServer ? ServerAuthOid : ClientAuthOid, out var flags);
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

    private string? Check(X509Certificate2 certificate, string usage) => Check(certificate, usage, out _);

    private string? Check(X509Certificate2 certificate, string usage, out X509ChainStatusFlags flags)
    {
        flags = X509ChainStatusFlags.NoError;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(_ca);
        chain.ChainPolicy.ExtraStore.AddRange(_intermediates);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        // The chain is built from --peer-ca-file and this node's own intermediates only: never
        // fetch an issuer a certificate names (AIA), which an unauthenticated peer would choose.
        chain.ChainPolicy.DisableCertificateDownloads = true;
        chain.ChainPolicy.ApplicationPolicy.Add(new Oid(usage));
        if (chain.Build(certificate)) return null;
        var reasons = new List<string>();
        foreach (var status in chain.ChainStatus)
        {
            flags |= status.Status;
            var reason = status.Status switch
            {
                X509ChainStatusFlags.UntrustedRoot or X509ChainStatusFlags.PartialChain => $"is not issued by --peer-ca-file ({_ca.Subject})",
                X509ChainStatusFlags.NotTimeValid => $"is not valid now (valid from {certificate.NotBefore.ToUniversalTime():yyyy-MM-dd HH:mm} to {certificate.NotAfter.ToUniversalTime():yyyy-MM-dd HH:mm} UTC: expired or not yet valid)",
                X509ChainStatusFlags.NotValidForUsage => $"is not made for TLS {(usage == ServerAuthOid ? "server" : "client")} authentication",
                _ => $"is refused: {status.Status} {status.StatusInformation.Trim()}",
            };
            if (!reasons.Contains(reason)) reasons.Add(reason);
        }
        return reasons.Count == 0 ? "is refused" : string.Join("; ", reasons);
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
        RemoteCertificateValidationCallback = (_, certificate, _, _) =>
        {
            verdict.Problem = CheckPeer(certificate, peerIsServer: false, expected: null, out var id, out var kind);
            verdict.NodeId = id;
            verdict.Kind = kind;
            return verdict.Problem is null;
        },
    };

    /// <summary>The options of the connecting side, calling node <paramref name="peer"/>.</summary>
    private SslClientAuthenticationOptions ClientOptions(int peer, PeerCertificateVerdict verdict) => new()
    {
        TargetHost = "raftps-node-" + peer,
        ClientCertificateContext = _context,
        EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        RemoteCertificateValidationCallback = (_, certificate, _, _) =>
        {
            verdict.Problem = CheckPeer(certificate, peerIsServer: true, expected: peer, out var id);
            verdict.NodeId = id;
            return verdict.Problem is null;
        },
    };

    /// <summary>
    /// The connecting side on a connected stream: the TLS preface, the peer's echo, the handshake.
    /// </summary>
    /// <exception cref="PeerTlsRefusedException">The peer does not use peer TLS, or one side refused the other's
    /// certificate: the message says which, for the log.</exception>
    public async Task<SslStream> ConnectAsync(Stream network, NodeAddress peer, CancellationToken ct)
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
            throw new IOException($"node {peer.Id} at {peer.Host}:{peer.Port} did not answer the peer TLS preface within {(int)HandshakeTimeout.TotalMilliseconds} ms");
        }
        if (got < echo.Length || !echo.AsSpan().SequenceEqual(PeerWire.TlsPreface))
        {
            // A node without peer TLS answers with its plain hello (a small length first), then closes.
            if (got > 0 && echo[0] <= PeerWire.MaxHelloBytes)
                throw new PeerTlsRefusedException($"Refused the connection to node {peer.Id} at {peer.Host}:{peer.Port}: it does not use peer TLS (it answered in plain text); " +
                    "give every node of the cluster --peer-cert-file, --peer-key-file and --peer-ca-file, or none of them", "plain");
            throw new IOException(got == 0
                ? $"node {peer.Id} at {peer.Host}:{peer.Port} closed the connection before it answered the peer TLS preface"
                : $"node {peer.Id} at {peer.Host}:{peer.Port} answered the peer TLS preface with something else");
        }
        var verdict = new PeerCertificateVerdict();
        var ssl = new SslStream(network, leaveInnerStreamOpen: false);
        try
        {
            await ssl.AuthenticateAsClientAsync(ClientOptions(peer.Id, verdict), timeout.Token);
            return ssl;
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            await ssl.DisposeAsync();
            if (verdict.Problem is { } problem)
                throw new PeerTlsRefusedException($"Refused the peer TLS connection to node {peer.Id} at {peer.Host}:{peer.Port}: {problem}", "certificate");
            throw new PeerTlsRefusedException($"The peer TLS handshake with node {peer.Id} at {peer.Host}:{peer.Port} failed: {e.Message} " +
                "(that node refused this node's certificate if its log says so: issued by another CA than its --peer-ca-file, expired, or naming another node)", "handshake");
        }
    }

    /// <summary>Makes the gRPC channel's connections to node <paramref name="peer"/> peer TLS connections: the
    /// channel speaks HTTP/2 (http://, prior knowledge) over the TLS stream this returns.</summary>
    public void ConfigureHandler(SocketsHttpHandler handler, NodeAddress peer)
    {
        handler.ConnectCallback = async (context, ct) =>
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(context.DnsEndPoint, ct);
                return await ConnectAsync(new NetworkStream(socket, ownsSocket: true), peer, ct);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        };
    }

    /// <summary>The startup line.</summary>
    public string Describe() =>
        $"Peer TLS: on (certificate {Hosting.Printable.Escape(Certificate.Subject)} naming node {Self}, valid until " +
        $"{Certificate.NotAfter.ToUniversalTime():yyyy-MM-dd HH:mm} UTC; peers' certificates issued by {Hosting.Printable.Escape(_ca.Subject)})";

    public void Dispose()
    {
        Certificate.Dispose();
        _ca.Dispose();
        foreach (var c in _intermediates) c.Dispose();
    }
}

/// <summary>The outcome of the check of a peer's certificate during one handshake.</summary>
public sealed class PeerCertificateVerdict
{
    /// <summary>Why the certificate was refused; null when accepted (or not checked yet).</summary>
    public string? Problem { get; set; }
    /// <summary>What was wrong, from a small fixed set (<see cref="PeerTls.CheckPeer(X509Certificate?, bool, int?, out int, out string)"/>).</summary>
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
