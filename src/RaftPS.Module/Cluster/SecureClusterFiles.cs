using System.Security;
using System.Security.Cryptography.X509Certificates;
using RaftPS.Client;

namespace RaftPS.Cluster;

/// <summary>
/// Start-RaftCluster -Secure: a throwaway CA, one node certificate naming every host of the
/// cluster (and the loopback names) for client TLS, a peer certificate per node naming that node
/// (peer TLS, made when a node is first started), an admin client certificate, an auth file with one
/// admin user and that user's token, in &lt;data directory&gt;/tls (users added to tls/users stay;
/// the nodes read the file when they start). Made once and reused while the node certificate is
/// valid for more than a day and names the same hosts. Keys and the token are readable by their
/// owner only. The CA's key is kept (ca.key.pem) so that a node added later gets its peer certificate.
/// </summary>
internal sealed class SecureClusterFiles
{
    public const string FolderName = "tls";
    public const string AdminUser = "admin";

    private SecureClusterFiles(string folder) => Folder = folder;

    public string Folder { get; }
    public string CaPath => Path.Combine(Folder, "ca.pem");
    private string CaKeyPath => Path.Combine(Folder, "ca.key.pem");
    public string PeerCertificatePath(int nodeId) => Path.Combine(Folder, $"peer-{nodeId}.pem");
    public string PeerKeyPath(int nodeId) => Path.Combine(Folder, $"peer-{nodeId}.key.pem");
    public string NodeCertificatePath => Path.Combine(Folder, "node.pem");
    public string NodeKeyPath => Path.Combine(Folder, "node.key.pem");
    public string ClientCertificatePath => Path.Combine(Folder, "client.pem");
    public string ClientKeyPath => Path.Combine(Folder, "client.key.pem");
    public string AuthFilePath => Path.Combine(Folder, "users");
    public string TokenPath => Path.Combine(Folder, "admin.token");
    private string HostsPath => Path.Combine(Folder, "hosts");

    /// <summary>The files for a cluster of <paramref name="hosts"/> under <paramref name="dataDirectory"/>, made when missing or stale.</summary>
    /// <param name="anyHosts">Nodes that join a running -Secure cluster: its files are reused whatever hosts they name
    /// (new ones would come from a new CA, which the running nodes do not trust).</param>
    public static SecureClusterFiles Ensure(string dataDirectory, IEnumerable<string> hosts, bool anyHosts = false)
    {
        var files = new SecureClusterFiles(Path.Combine(dataDirectory, FolderName));
        var names = hosts.Concat(["localhost", "127.0.0.1", "::1"]).Distinct(StringComparer.OrdinalIgnoreCase).OrderBy(h => h, StringComparer.OrdinalIgnoreCase).ToArray();
        if (!files.Usable(anyHosts ? null : names)) files.Make(names);
        return files;
    }

    /// <summary>The files of a -Secure cluster under <paramref name="dataDirectory"/> when they are there and usable
    /// (Add-RaftNode -Start passes them to the node it starts); null otherwise. Never makes any.</summary>
    public static SecureClusterFiles? Find(string dataDirectory)
    {
        var files = new SecureClusterFiles(Path.Combine(dataDirectory, FolderName));
        return files.Usable(null) ? files : null;
    }

    private bool Usable(string[]? hosts)
    {
        string[] all = [CaPath, CaKeyPath, NodeCertificatePath, NodeKeyPath, ClientCertificatePath, ClientKeyPath, AuthFilePath, TokenPath, HostsPath];
        if (!all.All(File.Exists)) return false;
        if (hosts is not null && File.ReadAllText(HostsPath).Trim() != string.Join(" ", hosts)) return false;
        using var node = X509Certificate2.CreateFromPem(File.ReadAllText(NodeCertificatePath));
        using var client = X509Certificate2.CreateFromPem(File.ReadAllText(ClientCertificatePath));
        var soon = DateTime.Now.AddDays(1);
        return node.NotAfter > soon && client.NotAfter > soon;
    }

    private void Make(string[] hosts)
    {
        Directory.CreateDirectory(Folder);
        var now = DateTimeOffset.UtcNow;
        using var ca = CertificateFactory.CreateCa("RaftPS throwaway CA", now.AddMinutes(-5), now.AddYears(1));
        // Peer certificates of the previous CA would not be trusted by the new one's nodes.
        foreach (var old in Directory.EnumerateFiles(Folder, "peer-*.pem")) File.Delete(old);
        using var node = CertificateFactory.CreateIssued(RaftCertificateKind.Node, "raftps-node", hosts, ca, now.AddMinutes(-5), now.AddDays(90));
        using var client = CertificateFactory.CreateIssued(RaftCertificateKind.Client, AdminUser, [], ca, now.AddMinutes(-5), now.AddDays(90));
        // The CA's key is kept (owner-only) to sign the peer certificates of nodes added later.
        CertificateFactory.WritePem(ca, CaPath, CaKeyPath);
        CertificateFactory.WritePem(node, NodeCertificatePath, NodeKeyPath);
        CertificateFactory.WritePem(client, ClientCertificatePath, ClientKeyPath);
        var token = UserTokens.NewToken();
        try
        {
            // Other users' lines in an existing auth file stay (added with New-RaftUserToken -AuthFile).
            UserTokens.WriteLine(AuthFilePath, AdminUser, "admin", UserTokens.Hash(token), replace: true);
            CertificateFactory.WriteSecret(TokenPath, new string(token));
        }
        finally
        {
            Array.Clear(token);
        }
        File.WriteAllText(HostsPath, string.Join(" ", hosts) + "\n");
    }

    /// <summary>Node <paramref name="nodeId"/>'s options: client TLS with client certificates required, the auth
    /// file, and peer TLS with a certificate naming the node (made now when it has none, or it expires within a day).</summary>
    public string[] ServerArguments(int nodeId)
    {
        EnsurePeerCertificate(nodeId);
        return ["--cert-file", NodeCertificatePath, "--key-file", NodeKeyPath, "--client-ca-file", CaPath, "--auth-file", AuthFilePath,
            "--peer-cert-file", PeerCertificatePath(nodeId), "--peer-key-file", PeerKeyPath(nodeId), "--peer-ca-file", CaPath];
    }

    private void EnsurePeerCertificate(int nodeId)
    {
        string certificatePath = PeerCertificatePath(nodeId), keyPath = PeerKeyPath(nodeId);
        if (File.Exists(certificatePath) && File.Exists(keyPath))
        {
            using var existing = X509Certificate2.CreateFromPem(File.ReadAllText(certificatePath));
            if (existing.NotAfter > DateTime.Now.AddDays(1)) return;
        }
        using var ca = X509Certificate2.CreateFromPemFile(CaPath, CaKeyPath);
        var now = DateTimeOffset.UtcNow;
        var notAfter = now.AddDays(90) < ca.NotAfter ? now.AddDays(90) : new DateTimeOffset(ca.NotAfter);
        using var peer = CertificateFactory.CreateIssued(RaftCertificateKind.Node, $"raftps-node-{nodeId}", [], ca, now.AddMinutes(-5), notAfter, nodeId);
        CertificateFactory.WritePem(peer, certificatePath, keyPath);
    }

    /// <summary>TLS trusting the throwaway CA, the admin client certificate and the admin token.</summary>
    private X509Certificate2Collection CaCertificates()
    {
        var cas = new X509Certificate2Collection();
        cas.ImportFromPemFile(CaPath);
        return cas;
    }

    public ConnectionSecurity ConnectionSecurity()
    {
        var text = File.ReadAllText(TokenPath).Trim().ToCharArray();
        try
        {
            var token = new SecureString();
            foreach (var c in text) token.AppendChar(c);
            token.MakeReadOnly();
            return new ConnectionSecurity(true, PemCertificates.LoadWithKey(ClientCertificatePath, ClientKeyPath),
                CaCertificates(), token);
        }
        finally
        {
            Array.Clear(text);
        }
    }
}
