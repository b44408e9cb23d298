using System.Management.Automation;
using System.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>
/// Connect-RaftNode: a connection to a node; unless -NotDefault, the runspace's current one. -UseTls
/// (with the CA that issued the nodes' certificates, and a client certificate when the nodes
/// require one) and a token (-Token or -Credential) are carried by every call made through it.
/// </summary>
[Cmdlet(VerbsCommunications.Connect, "RaftNode", DefaultParameterSetName = NoTokenSet)]
[OutputType(typeof(RaftConnection))]
public sealed class ConnectRaftNodeCommand : PSCmdlet
{
    private const string NoTokenSet = "NoToken";
    private const string TokenSet = "Token";
    private const string CredentialSet = "Credential";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string Address { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, 65535)]
    public int Port { get; set; }

    [Parameter]
    public SwitchParameter NotDefault { get; set; }

    /// <summary>Connect over TLS: the nodes run with --cert-file.</summary>
    [Parameter]
    public SwitchParameter UseTls { get; set; }

    /// <summary>The PEM certificate of the CA that issued the nodes' certificates; without it, the system's trust store decides.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CaCertificatePath { get; set; }

    /// <summary>A client certificate with its private key, for nodes that require one (--client-ca-file).</summary>
    [Parameter]
    [ValidateNotNull]
    public X509Certificate2? Certificate { get; set; }

    /// <summary>A client certificate from the user's (else the machine's) personal store, by thumbprint.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CertificateThumbprint { get; set; }

    /// <summary>A client certificate as a PEM file (its key in -CertificateKeyPath, else NAME.key.pem beside it, else in the same file).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CertificatePath { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CertificateKeyPath { get; set; }

    /// <summary>The token a node's auth file knows (New-RaftUserToken made it).</summary>
    [Parameter(Mandatory = true, ParameterSetName = TokenSet)]
    [ValidateNotNull]
    public SecureString? Token { get; set; }

    /// <summary>The token as a credential's password (the user name is not sent: the node knows the user by the token).</summary>
    [Parameter(Mandatory = true, ParameterSetName = CredentialSet)]
    [Credential]
    [ValidateNotNull]
    public PSCredential? Credential { get; set; }

    protected override void ProcessRecord()
    {
        var certificates = (Certificate is null ? 0 : 1) + (CertificateThumbprint is null ? 0 : 1) + (CertificatePath is null ? 0 : 1);
        if (certificates > 1)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException("Give one client certificate: -Certificate, -CertificateThumbprint or -CertificatePath."),
                "RaftInvalidArgument", ErrorCategory.InvalidArgument, null));
        if (!UseTls && (certificates > 0 || CaCertificatePath is not null))
            ThrowTerminatingError(new ErrorRecord(new ArgumentException("-CaCertificatePath and the client certificate parameters are TLS settings: add -UseTls."),
                "RaftInvalidArgument", ErrorCategory.InvalidArgument, null));
        var token = Token ?? Credential?.Password;
        if (token is not null && !UseTls)
            WriteWarning("The token is sent in plain text without -UseTls: anyone on the path can read it. Use -UseTls unless the network is trusted.");

        var security = UseTls || token is not null
            ? new ConnectionSecurity(UseTls, LoadClientCertificate(), LoadCa(), token)
            : null;
        var connection = new RaftConnection(Address, Port, security);
        if (!NotDefault) CurrentConnection.Set(connection);
        WriteVerbose($"Connected to {connection}{(UseTls ? " over TLS" : "")}{(token is null ? "" : " with a token")}{(NotDefault ? "" : " (now the current connection)")}.");
        WriteObject(connection);
    }

    private X509Certificate2Collection? LoadCa()
    {
        if (CaCertificatePath is null) return null;
        var path = SessionState.Path.GetUnresolvedProviderPathFromPSPath(CaCertificatePath);
        try
        {
            // Every certificate of the file (a bundle: a CA rolled over is listed with its successor); no key is read.
            var cas = new X509Certificate2Collection();
            cas.ImportFromPemFile(path);
            if (cas.Count == 0) throw new CryptographicException("the file holds no PEM certificate");
            return cas;
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException)
        {
            ThrowTerminatingError(new ErrorRecord(new IOException($"-CaCertificatePath '{path}': {e.Message}", e), "RaftCertificateUnreadable", ErrorCategory.ReadError, path));
            return null;
        }
    }

    private X509Certificate2? LoadClientCertificate()
    {
        if (Certificate is not null)
        {
            if (!Certificate.HasPrivateKey)
                ThrowTerminatingError(new ErrorRecord(new ArgumentException($"-Certificate {Certificate.Subject} has no private key: a client certificate needs one."),
                    "RaftCertificateNoKey", ErrorCategory.InvalidArgument, Certificate));
            return Certificate;
        }
        if (CertificateThumbprint is { } thumbprint)
        {
            foreach (var location in new[] { StoreLocation.CurrentUser, StoreLocation.LocalMachine })
            {
                using var store = new X509Store(StoreName.My, location);
                try
                {
                    store.Open(OpenFlags.ReadOnly | OpenFlags.OpenExistingOnly);
                }
                catch (CryptographicException)
                {
                    continue; // no such store on this machine
                }
                var found = store.Certificates.Find(X509FindType.FindByThumbprint, thumbprint.Replace(" ", ""), validOnly: false);
                if (found.Count > 0 && found[0].HasPrivateKey) return found[0];
            }
            ThrowTerminatingError(new ErrorRecord(new ItemNotFoundException($"No certificate with the thumbprint {thumbprint} and a private key is in the personal store (CurrentUser\\My or LocalMachine\\My)."),
                "RaftCertificateNotFound", ErrorCategory.ObjectNotFound, thumbprint));
        }
        if (CertificatePath is { } certificatePath)
        {
            var path = SessionState.Path.GetUnresolvedProviderPathFromPSPath(certificatePath);
            // The key: -CertificateKeyPath, else NAME.key.pem beside NAME.pem (what New-RaftCertificate writes), else the certificate's own file.
            var keyPath = CertificateKeyPath is null ? null : SessionState.Path.GetUnresolvedProviderPathFromPSPath(CertificateKeyPath);
            if (keyPath is null && NewRaftCertificateCommand.DefaultKeyPath(path) is var beside && File.Exists(beside)) keyPath = beside;
            try
            {
                return PemCertificates.LoadWithKey(path, keyPath);
            }
            catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
            {
                ThrowTerminatingError(new ErrorRecord(new IOException($"-CertificatePath '{path}': {e.Message}", e), "RaftCertificateUnreadable", ErrorCategory.ReadError, path));
            }
        }
        return null;
    }
}
