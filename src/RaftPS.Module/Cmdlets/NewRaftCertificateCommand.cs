using System.Management.Automation;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>
/// New-RaftCertificate: a CA, a node certificate (its hosts as subject alternative names) or a
/// client certificate, written as NAME.pem and NAME.key.pem (the key readable by its owner only)
/// in -Path. Node and client certificates are signed by the CA of -IssuerPath (its key in
/// -IssuerKeyPath, else ISSUER.key.pem beside it).
/// </summary>
[Cmdlet(VerbsCommon.New, "RaftCertificate", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(RaftCertificateFile))]
public sealed class NewRaftCertificateCommand : PSCmdlet
{
    [Parameter(Mandatory = true, Position = 0)]
    public RaftCertificateKind Kind { get; set; }

    /// <summary>The subject's common name and the files' name.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidatePattern("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    public string Name { get; set; } = "";

    /// <summary>Node certificates: every host name and IP address the node is reached by.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[] HostName { get; set; } = [];

    /// <summary>Node certificates for peer TLS: the id of the node the certificate is for (a raftps://node/ID name).</summary>
    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int? NodeId { get; set; }

    /// <summary>The CA's PEM certificate (node and client certificates).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? IssuerPath { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? IssuerKeyPath { get; set; }

    /// <summary>The folder to write to (default: the current one).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = ".";

    /// <summary>Days of validity from now (default: 3650 for a CA, 397 otherwise); -NotAfter sets the end instead.</summary>
    [Parameter]
    [ValidateRange(1, 36500)]
    public int ValidDays { get; set; }

    [Parameter]
    public DateTime? NotBefore { get; set; }

    [Parameter]
    public DateTime? NotAfter { get; set; }

    /// <summary>Overwrite existing files.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void EndProcessing()
    {
        if (Kind == RaftCertificateKind.Node && HostName.Length == 0)
            Fail(new ArgumentException("A node certificate needs -HostName: every host name and IP address clients and peers reach the node by."), "RaftInvalidArgument", ErrorCategory.InvalidArgument, Name);
        if (NodeId is not null && Kind != RaftCertificateKind.Node)
            Fail(new ArgumentException("-NodeId names the node of a node certificate (for peer TLS); a CA or client certificate names no node."), "RaftInvalidArgument", ErrorCategory.InvalidArgument, Name);
        if (Kind != RaftCertificateKind.CA && IssuerPath is null)
            Fail(new ArgumentException($"A {Kind.ToString().ToLowerInvariant()} certificate is signed by a CA: give its certificate with -IssuerPath (New-RaftCertificate CA <name> makes one)."), "RaftInvalidArgument", ErrorCategory.InvalidArgument, Name);
        var folder = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
        var certificatePath = System.IO.Path.Combine(folder, $"{Name}.pem");
        var keyPath = System.IO.Path.Combine(folder, $"{Name}.key.pem");
        if (!Force && (File.Exists(certificatePath) || File.Exists(keyPath)))
            Fail(new IOException($"'{certificatePath}' or its key exists already; -Force overwrites them."), "RaftCertificateExists", ErrorCategory.ResourceExists, certificatePath);
        var notBefore = NotBefore is { } from ? new DateTimeOffset(from) : DateTimeOffset.UtcNow.AddMinutes(-5);
        var notAfter = NotAfter is { } to ? new DateTimeOffset(to)
            : DateTimeOffset.UtcNow.AddDays(ValidDays > 0 ? ValidDays : Kind == RaftCertificateKind.CA ? 3650 : 397);
        if (notAfter <= notBefore)
            Fail(new ArgumentException($"-NotAfter ({notAfter:u}) is not after the start of validity ({notBefore:u})."), "RaftInvalidArgument", ErrorCategory.InvalidArgument, Name);
        if (!ShouldProcess(certificatePath, $"Create a {Kind} certificate CN={Name}")) return;

        X509Certificate2 certificate;
        try
        {
            Directory.CreateDirectory(folder);
            if (Kind == RaftCertificateKind.CA)
            {
                certificate = CertificateFactory.CreateCa(Name, notBefore, notAfter);
            }
            else
            {
                var issuerPath = SessionState.Path.GetUnresolvedProviderPathFromPSPath(IssuerPath!);
                var issuerKey = IssuerKeyPath is null ? DefaultKeyPath(issuerPath) : SessionState.Path.GetUnresolvedProviderPathFromPSPath(IssuerKeyPath);
                using var issuer = X509Certificate2.CreateFromPemFile(issuerPath, issuerKey);
                // The default validity ends with the CA's at the latest; an explicit one past it is an error.
                if (NotAfter is null && ValidDays == 0 && notAfter > issuer.NotAfter) notAfter = issuer.NotAfter;
                certificate = CertificateFactory.CreateIssued(Kind, Name, HostName, issuer, notBefore, notAfter, NodeId);
            }
            using (certificate)
            {
                CertificateFactory.WritePem(certificate, certificatePath, keyPath);
                WriteObject(new RaftCertificateFile
                {
                    Kind = Kind,
                    Name = Name,
                    Subject = certificate.Subject,
                    Thumbprint = certificate.Thumbprint,
                    NotBefore = certificate.NotBefore,
                    NotAfter = certificate.NotAfter,
                    HostName = Kind == RaftCertificateKind.Node ? HostName : [],
                    NodeId = NodeId,
                    CertificatePath = certificatePath,
                    KeyPath = keyPath,
                });
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
        {
            Fail(e, "RaftCertificateFailed", ErrorCategory.InvalidOperation, certificatePath);
        }
    }

    /// <summary>ca.pem → ca.key.pem (what New-RaftCertificate writes).</summary>
    internal static string DefaultKeyPath(string certificatePath) =>
        certificatePath.EndsWith(".pem", StringComparison.OrdinalIgnoreCase) ? certificatePath[..^4] + ".key.pem" : certificatePath + ".key.pem";

    private void Fail(Exception e, string id, ErrorCategory category, object? target) =>
        ThrowTerminatingError(new ErrorRecord(e, id, category, target));
}
