using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace RaftServer.Transport;

/// <summary>
/// The CAs a CA option (--peer-ca-file, --client-ca-file) trusts, and the check of a certificate
/// against them (docs/security.md, "Which certificates are accepted"): every certificate in the
/// file is a trusted root (a PEM bundle, so a CA can be rolled over by listing the old and the new
/// one), the chain is built from those roots, this node's own intermediates and the ones the peer
/// sent in its handshake, never from anything fetched (no AIA downloads: the issuer URL is the
/// peer's choice), revocation is not checked, and the certificate must list every TLS usage its
/// role needs in an extended key usage extension: one without that extension is refused.
/// </summary>
public sealed class CertificateTrust : IDisposable
{
    public const string ServerAuthOid = "1.3.6.1.5.5.7.3.1";
    public const string ClientAuthOid = "1.3.6.1.5.5.7.3.2";

    private readonly X509Certificate2Collection _roots;
    private readonly X509Certificate2Collection _intermediates;
    private readonly string[] _usages;

    /// <param name="option">The option that names the CA file, for messages.</param>
    /// <param name="usages">The extended key usages a certificate must list (OIDs).</param>
    private CertificateTrust(string option, X509Certificate2Collection roots, X509Certificate2Collection intermediates, string[] usages)
    {
        Option = option;
        _roots = roots;
        _intermediates = intermediates;
        _usages = usages;
    }

    public string Option { get; }

    /// <summary>The trusted CAs' subjects, for startup lines and refusals.</summary>
    public string RootsText => string.Join(" and ", _roots.Select(r => Hosting.Printable.Escape(r.Subject)));

    /// <summary>Reads every certificate of a PEM file as a trusted CA.</summary>
    /// <param name="intermediates">This node's own intermediate certificates (the ones after its certificate in its file), also used to build chains.</param>
    /// <exception cref="InvalidDataException">The file is missing, unreadable or holds no certificate: the message names the option.</exception>
    public static CertificateTrust Load(string option, string caFile, X509Certificate2Collection intermediates, params string[] usages)
    {
        var roots = new X509Certificate2Collection();
        try
        {
            roots.ImportFromPemFile(caFile);
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new InvalidDataException($"{option} {caFile}: {e.Message}");
        }
        if (roots.Count == 0) throw new InvalidDataException($"{option} {caFile}: holds no certificate");
        return new CertificateTrust(option, roots, intermediates, usages);
    }

    /// <summary>
    /// The policy of a chain built for this trust: for the platform's own check during a TLS handshake
    /// (SslServerAuthenticationOptions.CertificateChainPolicy), so that it too never downloads an issuer.
    /// </summary>
    public X509ChainPolicy Policy()
    {
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
            // Never fetch an issuer a certificate names (AIA): an unauthenticated peer would choose the URL.
            DisableCertificateDownloads = true,
        };
        policy.CustomTrustStore.AddRange(_roots);
        policy.ExtraStore.AddRange(_intermediates);
        foreach (var usage in _usages) policy.ApplicationPolicy.Add(new Oid(usage));
        return policy;
    }

    /// <summary>Why <paramref name="certificate"/> is refused, or null when it chains to a trusted CA, is valid now and lists the usages.</summary>
    /// <param name="sent">The certificates the peer sent with it in the handshake (intermediates), or null.</param>
    /// <param name="flags">What the chain found wrong (for rate-limiting log lines on it).</param>
    public string? Check(X509Certificate2 certificate, X509Certificate2Collection? sent, out X509ChainStatusFlags flags)
    {
        flags = X509ChainStatusFlags.NoError;
        using var chain = new X509Chain { ChainPolicy = Policy() };
        if (sent is not null)
            foreach (var c in sent)
                if (c.RawDataMemory.Span.SequenceEqual(certificate.RawDataMemory.Span) is false) chain.ChainPolicy.ExtraStore.Add(c);
        if (chain.Build(certificate)) return MissingUsage(certificate, out flags);
        var reasons = new List<string>();
        foreach (var status in chain.ChainStatus)
        {
            flags |= status.Status;
            var reason = status.Status switch
            {
                X509ChainStatusFlags.UntrustedRoot or X509ChainStatusFlags.PartialChain => $"is not issued by {Option} ({RootsText})",
                X509ChainStatusFlags.NotTimeValid => $"is not valid now (valid from {certificate.NotBefore.ToUniversalTime():yyyy-MM-dd HH:mm} to {certificate.NotAfter.ToUniversalTime():yyyy-MM-dd HH:mm} UTC: expired or not yet valid)",
                // The leaf's own list says which usage is missing; otherwise an intermediate restricts them.
                X509ChainStatusFlags.NotValidForUsage => MissingUsage(certificate, out _) ?? $"is not made for {UsagesText(_usages)} (an issuer in its chain restricts its usages)",
                _ => $"is refused: {status.Status} {status.StatusInformation.Trim()}",
            };
            if (!reasons.Contains(reason)) reasons.Add(reason);
        }
        return reasons.Count == 0 ? "is refused" : string.Join("; ", reasons);
    }

    /// <summary>
    /// The leaf's own extended key usages, checked apart from the chain: the platforms accept a
    /// certificate without the extension for any usage (RFC 5280), and that is refused here.
    /// </summary>
    private string? MissingUsage(X509Certificate2 certificate, out X509ChainStatusFlags flags)
    {
        flags = X509ChainStatusFlags.NoError;
        var eku = certificate.Extensions.OfType<X509EnhancedKeyUsageExtension>().FirstOrDefault();
        if (eku is null)
        {
            flags = X509ChainStatusFlags.NotValidForUsage;
            return $"has no extended key usage extension: it must list {UsagesText(_usages)}";
        }
        var listed = eku.EnhancedKeyUsages.Cast<Oid>().Select(o => o.Value).ToHashSet();
        var missing = _usages.Where(u => !listed.Contains(u)).ToArray();
        if (missing.Length == 0) return null;
        flags = X509ChainStatusFlags.NotValidForUsage;
        return $"is not made for {UsagesText(missing)} (a certificate for {Option} must list {UsagesText(_usages)})";
    }

    private static string UsagesText(IEnumerable<string> usages) =>
        "TLS " + string.Join(" and ", usages.Select(u => u switch { ServerAuthOid => "server", ClientAuthOid => "client", _ => u })) + " authentication";

    public void Dispose()
    {
        foreach (var c in _roots) c.Dispose(); // the intermediates belong to the caller
    }
}
