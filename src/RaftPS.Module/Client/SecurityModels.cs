using System.Security;
using RaftPS.Client;

namespace RaftPS;

/// <summary>What a certificate is for.</summary>
public enum RaftCertificateKind
{
    /// <summary>A certificate authority: signs the node and client certificates.</summary>
    CA,
    /// <summary>A node: server authentication for the host names and addresses it is reached by (and client authentication, for calls between nodes).</summary>
    Node,
    /// <summary>A client: client authentication, for nodes that require client certificates.</summary>
    Client,
}

/// <summary>A certificate New-RaftCertificate wrote: its PEM file and its key's.</summary>
public sealed class RaftCertificateFile
{
    public required RaftCertificateKind Kind { get; init; }
    public required string Name { get; init; }
    public required string Subject { get; init; }
    public required string Thumbprint { get; init; }
    public required DateTime NotBefore { get; init; }
    public required DateTime NotAfter { get; init; }
    /// <summary>Node certificates: the host names and addresses it names.</summary>
    public required string[] HostName { get; init; }
    /// <summary>Node certificates for peer TLS: the node it names (raftps://node/ID); null when it names none.</summary>
    public int? NodeId { get; init; }
    public required string CertificatePath { get; init; }
    public required string KeyPath { get; init; }

    public override string ToString() => CertificatePath;
}

/// <summary>
/// A user New-RaftUserToken made: the token (a SecureString unless -AsPlainText asked for text) and
/// the auth file line's hash.
/// </summary>
public sealed class RaftUserToken
{
    public required string Name { get; init; }
    public required string Role { get; init; }
    /// <summary>The token as a SecureString (pass it to Connect-RaftNode -Token).</summary>
    public SecureString? Token { get; init; }
    /// <summary>-AsPlainText: the token's text, shown this once; store it in a secret store.</summary>
    public string? PlainTextToken { get; init; }
    /// <summary>The SHA-256 of the token, as the auth file holds it.</summary>
    public required string Hash { get; init; }
    /// <summary>The auth file written, or null.</summary>
    public string? AuthFile { get; init; }
}
