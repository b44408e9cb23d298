using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using RaftServer.Transport;

namespace RaftServer.Tests.Integration;

/// <summary>
/// Certificates for peer TLS tests, made with CertificateRequest as New-RaftCertificate makes them
/// (ECDSA P-256; node certificates for client and server authentication, naming 127.0.0.1 and
/// localhost, and a node with <c>raftps://node/ID</c>), written as PEM files in a folder.
/// </summary>
public sealed class PeerTlsFiles
{
    private readonly string _folder;
    private readonly X509Certificate2 _ca;

    public PeerTlsFiles(string folder, string caName = "peer test CA")
    {
        _folder = folder;
        Directory.CreateDirectory(folder);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={caName}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        _ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-30), DateTimeOffset.UtcNow.AddYears(1));
        CaPath = Path.Combine(folder, $"{Sanitize(caName)}.pem");
        File.WriteAllText(CaPath, _ca.ExportCertificatePem());
    }

    public string CaPath { get; }

    /// <summary>A node certificate naming <paramref name="nodeId"/> (none when null); returns (certificate, key) paths.</summary>
    public (string Cert, string Key) Node(string name, int? nodeId, DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null, int[]? moreNodeIds = null)
    {
        using var certificate = Make(name, nodeId, notBefore ?? DateTimeOffset.UtcNow.AddDays(-1), notAfter ?? DateTimeOffset.UtcNow.AddDays(30), moreNodeIds);
        var cert = Path.Combine(_folder, $"{name}.pem");
        var key = Path.Combine(_folder, $"{name}.key.pem");
        File.WriteAllText(cert, certificate.ExportCertificatePem());
        using var ecdsa = certificate.GetECDsaPrivateKey()!;
        File.WriteAllText(key, ecdsa.ExportPkcs8PrivateKeyPem());
        return (cert, key);
    }

    /// <summary>The node's peer TLS options with the certificate of <see cref="Node"/> named <c>node-ID</c>.</summary>
    public string[] Arguments(int nodeId)
    {
        var (cert, key) = Node($"node-{nodeId}", nodeId);
        return ["--peer-cert-file", cert, "--peer-key-file", key, "--peer-ca-file", CaPath];
    }

    /// <summary>A certificate with its private key, for an in-process peer.</summary>
    public X509Certificate2 Make(string name, int? nodeId, DateTimeOffset notBefore, DateTimeOffset notAfter, int[]? moreNodeIds = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(new OidCollection { new("1.3.6.1.5.5.7.3.1"), new("1.3.6.1.5.5.7.3.2") }, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(_ca, true, false));
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        if (nodeId is { } id) names.AddUri(new Uri(PeerTls.NodeUriPrefix + id));
        foreach (var more in moreNodeIds ?? []) names.AddUri(new Uri(PeerTls.NodeUriPrefix + more));
        request.CertificateExtensions.Add(names.Build());
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
        if (notBefore < _ca.NotBefore) notBefore = _ca.NotBefore;
        using var issued = request.Create(_ca, notBefore, notAfter, serial);
        return issued.CopyWithPrivateKey(key);
    }

    private static string Sanitize(string name) => new(name.Select(c => char.IsLetterOrDigit(c) ? c : '-').ToArray());
}
