using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging;
using RaftServer.Transport;

namespace RaftServer.Api.Security;

/// <summary>
/// Client TLS (--cert-file, --key-file, --client-ca-file): the node's certificate and, when client
/// certificates are required, the CA they must chain to. Loaded once at start; a file that cannot
/// be read or parsed is a usage error naming it.
/// </summary>
public sealed class ClientTls : IDisposable
{
    private readonly X509Certificate2Collection _chain;
    private readonly CertificateTrust? _clientCa;

    private ClientTls(X509Certificate2 certificate, X509Certificate2Collection chain, CertificateTrust? clientCa)
    {
        Certificate = certificate;
        _chain = chain;
        _clientCa = clientCa;
    }

    public X509Certificate2 Certificate { get; }
    public bool RequiresClientCertificate => _clientCa is not null;

    /// <exception cref="InvalidDataException">A file is missing, unreadable or not what it should be.</exception>
    public static ClientTls Load(string certFile, string keyFile, string? clientCaFile)
    {
        X509Certificate2 certificate;
        var chain = new X509Certificate2Collection();
        try
        {
            certificate = X509Certificate2.CreateFromPemFile(certFile, keyFile);
            // Intermediate certificates after the node's own in the same file are sent with it.
            chain.ImportFromPemFile(certFile);
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new InvalidDataException($"--cert-file {certFile} / --key-file {keyFile}: {e.Message}");
        }
        if (!certificate.HasPrivateKey)
            throw new InvalidDataException($"--key-file {keyFile}: holds no private key for the certificate of {certFile}");
        if (OperatingSystem.IsWindows())
        {
            // SChannel cannot use the ephemeral key of a PEM import: give it a persisted-in-memory one.
            using var ephemeral = certificate;
            certificate = X509CertificateLoader.LoadPkcs12(ephemeral.Export(X509ContentType.Pkcs12), null);
        }
        var intermediates = new X509Certificate2Collection();
        foreach (var c in chain)
            if (c.Thumbprint != certificate.Thumbprint) intermediates.Add(c);
        // Every CA of the file is trusted (a bundle); chains are built with the intermediates the client sends.
        var ca = clientCaFile is null ? null
            : CertificateTrust.Load("--client-ca-file", clientCaFile, new X509Certificate2Collection(), CertificateTrust.ClientAuthOid);
        return new ClientTls(certificate, intermediates, ca);
    }

    /// <summary>Kestrel's HTTPS options for the TLS side of the node's port.</summary>
    public HttpsConnectionAdapterOptions HttpsOptions(ILogger logger) => new()
    {
        ServerCertificate = Certificate,
        ServerCertificateChain = _chain.Count > 0 ? _chain : null,
        SslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        ClientCertificateMode = _clientCa is null ? ClientCertificateMode.NoCertificate : ClientCertificateMode.RequireCertificate,
        ClientCertificateValidation = _clientCa is null ? null : (certificate, chain, _) =>
        {
            string? problem;
            try
            {
                problem = CheckClientCertificate(certificate, chain?.ChainPolicy.ExtraStore);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Inside the TLS stack's callback: a certificate that cannot be checked is refused, with the reason.
                problem = $"it could not be checked ({e.GetType().Name}: {e.Message})";
            }
            if (problem is not null)
                logger.LogWarning("Refused a client certificate ({Subject}): {Problem}", Hosting.Printable.Escape(certificate.Subject), problem);
            return problem is null;
        },
        // The platform builds a chain before the validation callback: with this policy it fetches nothing either.
        OnAuthenticate = _clientCa is null ? null : (_, options) => options.CertificateChainPolicy = _clientCa.Policy(),
        HandshakeTimeout = TimeSpan.FromSeconds(10),
    };

    /// <summary>Null when the client certificate chains to a CA of --client-ca-file (through the intermediates it
    /// sent, <paramref name="sent"/>), is valid now and lists client authentication; else why not.</summary>
    public string? CheckClientCertificate(X509Certificate2 certificate, X509Certificate2Collection? sent = null) =>
        _clientCa is null ? null : _clientCa.Check(certificate, sent, out _);

    /// <summary>The startup line's description.</summary>
    public string Describe() =>
        $"certificate {Certificate.Subject}, valid until {Certificate.NotAfter.ToUniversalTime():yyyy-MM-dd HH:mm} UTC" +
        (_clientCa is null ? "; client certificates not required" : $"; client certificates required, issued by {_clientCa.RootsText}");

    public void Dispose()
    {
        Certificate.Dispose();
        _clientCa?.Dispose();
        foreach (var c in _chain) c.Dispose();
    }
}
