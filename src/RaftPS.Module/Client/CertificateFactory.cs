using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace RaftPS.Client;

/// <summary>
/// Certificates for a deployment made with .NET's CertificateRequest (no openssl): a CA, node
/// certificates naming their hosts as subject alternative names, client certificates. Keys are
/// ECDSA P-256: small, fast to make and to handshake with, and supported by every TLS stack
/// RaftPS runs on.
/// </summary>
internal static class CertificateFactory
{
    private const string ServerAuth = "1.3.6.1.5.5.7.3.1";
    private const string ClientAuth = "1.3.6.1.5.5.7.3.2";

    public static X509Certificate2 CreateCa(string name, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={Escape(name)}"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 1, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return request.CreateSelfSigned(notBefore, notAfter);
    }

    /// <summary>The subject alternative name URI that names node ID for peer TLS (the server's PeerTls.NodeUriPrefix).</summary>
    public const string NodeUriPrefix = "raftps://node/";

    /// <param name="hosts">Node certificates: the names and addresses clients and peers reach the node by.</param>
    /// <param name="nodeId">Node certificates for peer TLS: the node they name (a <c>raftps://node/ID</c> URI).</param>
    /// <exception cref="ArgumentException">The validity falls outside the issuer's.</exception>
    public static X509Certificate2 CreateIssued(RaftCertificateKind kind, string name, IReadOnlyList<string> hosts, X509Certificate2 issuer,
        DateTimeOffset notBefore, DateTimeOffset notAfter, int? nodeId = null)
    {
        if (notAfter > issuer.NotAfter)
            throw new ArgumentException($"the certificate would outlive its CA ({issuer.Subject} is valid until {issuer.NotAfter:yyyy-MM-dd}): make it expire earlier, or make a new CA");
        if (notBefore < issuer.NotBefore) notBefore = issuer.NotBefore;
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={Escape(name)}"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        var usages = new OidCollection { new Oid(ClientAuth) };
        if (kind == RaftCertificateKind.Node) usages.Add(new Oid(ServerAuth));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(usages, false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, true, false));
        if (hosts.Count > 0 || nodeId is not null)
        {
            var names = new SubjectAlternativeNameBuilder();
            foreach (var host in hosts)
            {
                if (IPAddress.TryParse(host, out var ip)) names.AddIpAddress(ip);
                else names.AddDnsName(host);
            }
            if (nodeId is { } id) names.AddUri(new Uri(NodeUriPrefix + id.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            request.CertificateExtensions.Add(names.Build());
        }
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F; // positive
        using var issued = request.Create(issuer, notBefore, notAfter, serial);
        return issued.CopyWithPrivateKey(key);
    }

    /// <summary>Writes the certificate and its private key as PEM; the key file is readable by its owner only (on Unix).</summary>
    public static void WritePem(X509Certificate2 certificate, string certificatePath, string keyPath)
    {
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem() + "\n"); // ends in a newline: `cat a.pem b.pem` makes a bundle
        using var key = certificate.GetECDsaPrivateKey() ?? throw new ArgumentException("the certificate has no ECDSA private key");
        WriteSecret(keyPath, key.ExportPkcs8PrivateKeyPem());
    }

    /// <summary>Writes a file only its owner can read (Unix: created with mode 0600; Windows: the user profile's ACLs).</summary>
    public static void WriteSecret(string path, string text)
    {
        // A new file renamed over the old one: a node rereading its auth file (or anyone reading a
        // key) sees the old content or the new, never a half-written file; created readable by its
        // owner only, so the secret is never readable by others, not even for a moment.
        var temporary = $"{path}.{Guid.NewGuid():N}.tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        try
        {
            using (var stream = new FileStream(temporary, options))
            using (var writer = new StreamWriter(stream))
                writer.Write(text);
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            File.Delete(temporary); // gone already unless the write or the rename failed
        }
    }

    private static string Escape(string name) => name.Replace("\\", "\\\\").Replace(",", "\\,").Replace("+", "\\+").Replace("=", "\\=").Replace("\"", "\\\"");
}

/// <summary>Loading PEM certificates with their keys in a form every platform's TLS can use.</summary>
internal static class PemCertificates
{
    public static X509Certificate2 LoadWithKey(string certificatePath, string? keyPath)
    {
        var certificate = X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
        if (!OperatingSystem.IsWindows()) return certificate;
        // SChannel cannot use the ephemeral key of a PEM import: re-import it from PKCS#12.
        using (certificate)
            return new X509Certificate2(certificate.Export(X509ContentType.Pkcs12));
    }
}
