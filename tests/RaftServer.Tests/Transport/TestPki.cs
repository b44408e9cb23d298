using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using RaftServer.Transport;

namespace RaftServer.Tests.Transport;

/// <summary>
/// A certificate authority for tests of the certificate checks: roots, intermediates, and leaf
/// certificates with any extended key usages (none at all too) and an optional AIA issuer URL.
/// </summary>
public sealed class TestPki : IDisposable
{
    public const string ServerAuth = CertificateTrust.ServerAuthOid;
    public const string ClientAuth = CertificateTrust.ClientAuthOid;
    private readonly ECDsa _key;

    private TestPki(X509Certificate2 certificate, ECDsa key)
    {
        Certificate = certificate;
        _key = key;
    }

    /// <summary>The CA's certificate (with its key).</summary>
    public X509Certificate2 Certificate { get; }

    public static TestPki Root(string name)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 2, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return new TestPki(request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-30), DateTimeOffset.UtcNow.AddYears(1)), key);
    }

    /// <summary>An intermediate CA this one issues.</summary>
    public TestPki Intermediate(string name)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 1, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Certificate, true, false));
        using var issued = request.Create(Certificate, DateTimeOffset.UtcNow.AddDays(-20), DateTimeOffset.UtcNow.AddMonths(6), Serial());
        return new TestPki(issued.CopyWithPrivateKey(key), key);
    }

    /// <summary>A leaf certificate (with its key) naming node <paramref name="nodeId"/> when given.</summary>
    /// <param name="usages">Its extended key usages; null: no extended key usage extension at all.</param>
    /// <param name="issuerUrl">An AIA caIssuers URL, where a chain builder allowed to download would fetch the issuer.</param>
    public X509Certificate2 Leaf(string name, int? nodeId, string[]? usages, string? issuerUrl = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        if (usages is not null)
        {
            var oids = new OidCollection();
            foreach (var u in usages) oids.Add(new Oid(u));
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(oids, false));
        }
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Certificate, true, false));
        if (issuerUrl is not null)
            request.CertificateExtensions.Add(new X509AuthorityInformationAccessExtension(null, [issuerUrl], false));
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        if (nodeId is { } id) names.AddUri(new Uri(PeerTls.NodeUriPrefix + id));
        request.CertificateExtensions.Add(names.Build());
        using var issued = request.Create(Certificate, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30), Serial());
        return issued.CopyWithPrivateKey(key);
    }

    /// <summary>A node certificate as New-RaftCertificate makes it (server and client authentication).</summary>
    public X509Certificate2 Node(int nodeId) => Leaf($"node-{nodeId}", nodeId, [ServerAuth, ClientAuth]);

    /// <summary>Writes <paramref name="certificate"/> (followed by <paramref name="chain"/>) and its key as PEM files; returns their paths.</summary>
    public static (string Cert, string Key) Write(string folder, string name, X509Certificate2 certificate, params X509Certificate2[] chain)
    {
        Directory.CreateDirectory(folder);
        var cert = Path.Combine(folder, name + ".pem");
        var key = Path.Combine(folder, name + ".key.pem");
        File.WriteAllText(cert, string.Concat(new[] { certificate }.Concat(chain).Select(c => c.ExportCertificatePem() + "\n")));
        using var ecdsa = certificate.GetECDsaPrivateKey()!;
        File.WriteAllText(key, ecdsa.ExportPkcs8PrivateKeyPem());
        return (cert, key);
    }

    /// <summary>Writes the certificates of <paramref name="cas"/> into one PEM file (a CA bundle).</summary>
    public static string WriteBundle(string folder, string name, params TestPki[] cas)
    {
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, name + ".pem");
        File.WriteAllText(path, string.Concat(cas.Select(c => c.Certificate.ExportCertificatePem() + "\n")));
        return path;
    }

    private static byte[] Serial()
    {
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
        return serial;
    }

    public void Dispose()
    {
        Certificate.Dispose();
        _key.Dispose();
    }
}
