using System.Security;
using System.Security.Cryptography.X509Certificates;
using RaftPS.Client;

namespace RaftPS.Cluster;

/// <summary>
/// Start-RaftCluster -Secure: a throwaway CA, one node certificate naming every host of the
/// cluster (and the loopback names), an admin client certificate, an auth file with one admin
/// user and that user's token, in &lt;data directory&gt;/tls (users added to tls/users stay; the
/// nodes read the file when they start). Made once and reused while the node
/// certificate is valid for more than a day and names the same hosts. Keys and the token are
/// readable by their owner only.
/// </summary>
internal sealed class SecureClusterFiles
{
    public const string FolderName = "tls";
    public const string AdminUser = "admin";

    private SecureClusterFiles(string folder) => Folder = folder;

    public string Folder { get; }
    public string CaPath => Path.Combine(Folder, "ca.pem");
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

    private bool Usable(string[]? hosts)
    {
        string[] all = [CaPath, NodeCertificatePath, NodeKeyPath, ClientCertificatePath, ClientKeyPath, AuthFilePath, TokenPath, HostsPath];
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
        using var node = CertificateFactory.CreateIssued(RaftCertificateKind.Node, "raftps-node", hosts, ca, now.AddMinutes(-5), now.AddDays(90));
        using var client = CertificateFactory.CreateIssued(RaftCertificateKind.Client, AdminUser, [], ca, now.AddMinutes(-5), now.AddDays(90));
        // The CA's key is not kept: nothing else is ever signed with it.
        File.WriteAllText(CaPath, ca.ExportCertificatePem());
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

    /// <summary>The nodes' options: client TLS with client certificates required, and the auth file.</summary>
    public string[] ServerArguments() =>
        ["--cert-file", NodeCertificatePath, "--key-file", NodeKeyPath, "--client-ca-file", CaPath, "--auth-file", AuthFilePath];

    /// <summary>TLS trusting the throwaway CA, the admin client certificate and the admin token.</summary>
    public ConnectionSecurity ConnectionSecurity()
    {
        var text = File.ReadAllText(TokenPath).Trim().ToCharArray();
        try
        {
            var token = new SecureString();
            foreach (var c in text) token.AppendChar(c);
            token.MakeReadOnly();
            return new ConnectionSecurity(true, PemCertificates.LoadWithKey(ClientCertificatePath, ClientKeyPath),
                X509Certificate2.CreateFromPem(File.ReadAllText(CaPath)), token);
        }
        finally
        {
            Array.Clear(text);
        }
    }
}
