using System.Net.Http;
using System.Net.Security;
using System.Runtime.InteropServices;
using System.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace RaftPS.Client;

/// <summary>
/// How a connection reaches its nodes: TLS (with the CA that must have issued the nodes'
/// certificates, else the system's trust store, and a client certificate when the nodes ask for
/// one) and a bearer token. The token is kept as a SecureString and turned into text only for the
/// header of each call.
/// </summary>
internal sealed class ConnectionSecurity
{
    public const string AuthorizationHeader = "authorization";

    /// <param name="trustedCas">Every CA of -CaCertificatePath (a PEM bundle: a CA rolled over is listed with its successor), or null for the system's trust store.</param>
    public ConnectionSecurity(bool useTls, X509Certificate2? clientCertificate, X509Certificate2Collection? trustedCas, SecureString? token)
    {
        if (trustedCas is { Count: 0 }) throw new ArgumentException("a CA file must hold at least one certificate", nameof(trustedCas));
        UseTls = useTls;
        ClientCertificate = clientCertificate;
        TrustedCas = trustedCas;
        Token = token is null ? null : token.IsReadOnly() ? token : ReadOnlyCopy(token);
        Identity = string.Join('|', useTls ? "tls" : "plain", clientCertificate?.Thumbprint ?? "-",
            trustedCas is null ? "-" : string.Join(',', trustedCas.Select(c => c.Thumbprint)),
            Token is null ? "-" : Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(Reveal(Token)))));
    }

    /// <summary>
    /// Equal for two objects made from the same settings (the certificates by thumbprint, the token
    /// by its SHA-256): channels are shared by it, so connecting again with the same settings
    /// reuses the channel (and its HTTP/2 connections) instead of opening another each time.
    /// </summary>
    public string Identity { get; }

    public bool UseTls { get; }
    public X509Certificate2? ClientCertificate { get; }
    public X509Certificate2Collection? TrustedCas { get; }
    public SecureString? Token { get; }

    /// <summary>The handler chain of a channel to <paramref name="host"/>: TLS settings on the socket handler, the token on every request.</summary>
    public HttpMessageHandler Handler(SocketsHttpHandler sockets)
    {
        if (UseTls)
        {
            sockets.SslOptions = new SslClientAuthenticationOptions
            {
                ClientCertificates = ClientCertificate is null ? null : new X509CertificateCollection { ClientCertificate },
                RemoteCertificateValidationCallback = TrustedCas is null ? null : CheckServerCertificate,
                // With a CA of its own the connection trusts only what chains to it: the platform's chain
                // build before the callback must not fetch an issuer the node's certificate points to (AIA).
                CertificateChainPolicy = TrustedCas is null ? null
                    : new X509ChainPolicy { DisableCertificateDownloads = true, RevocationMode = X509RevocationMode.NoCheck },
            };
        }
        return Token is null ? sockets : new TokenHandler(Token) { InnerHandler = sockets };
    }

    /// <summary>Trusts a node's certificate only when it chains to one of <see cref="TrustedCas"/>, is valid now and names the host called.</summary>
    /// <remarks>A refusal fails the call; <see cref="TlsDiagnosis"/> then probes the node and says why.</remarks>
    private bool CheckServerCertificate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors) =>
        ProblemWith(certificate, chain, errors) is null;

    /// <summary>
    /// Why a node's certificate is not to be trusted, or null: against <see cref="TrustedCas"/> when
    /// given (through the intermediates the node sent, never through anything downloaded), else as
    /// the system's trust store judged it (<paramref name="errors"/>, <paramref name="chain"/>).
    /// </summary>
    public string? ProblemWith(X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null) return "the node sent no certificate";
        if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
            return $"its certificate ({certificate.Subject}) does not name the host called (its subject alternative names must include the address you connect to)";
        using var leaf = new X509Certificate2(certificate);
        if (TrustedCas is null)
        {
            if (errors == SslPolicyErrors.None) return null;
            var status = chain?.ChainStatus is { Length: > 0 } s ? string.Join("; ", s.Select(x => $"{x.Status} ({x.StatusInformation.Trim()})")) : errors.ToString();
            return $"its certificate ({leaf.Subject}, issued by {leaf.Issuer}, valid {leaf.NotBefore:yyyy-MM-dd} to {leaf.NotAfter:yyyy-MM-dd}) is not trusted by this machine: {status}; " +
                "give the CA that issued it with -CaCertificatePath";
        }
        using var own = new X509Chain();
        own.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        own.ChainPolicy.CustomTrustStore.AddRange(TrustedCas);
        if (chain is not null) own.ChainPolicy.ExtraStore.AddRange(chain.ChainPolicy.ExtraStore); // the intermediates the node sent
        own.ChainPolicy.DisableCertificateDownloads = true;
        own.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        own.ChainPolicy.ApplicationPolicy.Add(new System.Security.Cryptography.Oid("1.3.6.1.5.5.7.3.1")); // server authentication
        if (own.Build(leaf)) return null;
        return $"its certificate ({leaf.Subject}, issued by {leaf.Issuer}, valid {leaf.NotBefore:yyyy-MM-dd} to {leaf.NotAfter:yyyy-MM-dd}) is not trusted by -CaCertificatePath ({string.Join(" and ", TrustedCas.Select(c => c.Subject))}): " +
            string.Join("; ", own.ChainStatus.Select(x => $"{x.Status} ({x.StatusInformation.Trim()})"));
    }

    private static SecureString ReadOnlyCopy(SecureString token)
    {
        var copy = token.Copy();
        copy.MakeReadOnly();
        return copy;
    }

    /// <summary>Adds "authorization: Bearer TOKEN" to each request; the text of the token lives only for that request.</summary>
    private sealed class TokenHandler(SecureString token) : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Headers.TryAddWithoutValidation(AuthorizationHeader, "Bearer " + Reveal(token));
            return base.SendAsync(request, cancellationToken);
        }
    }

    internal static string Reveal(SecureString secret)
    {
        var pointer = Marshal.SecureStringToGlobalAllocUnicode(secret);
        try
        {
            return Marshal.PtrToStringUni(pointer, secret.Length);
        }
        finally
        {
            Marshal.ZeroFreeGlobalAllocUnicode(pointer);
        }
    }
}
