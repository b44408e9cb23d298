using RaftServer.Hosting;

namespace RaftServer.Api.Security;

/// <summary>The node's client security as its options set it: TLS (or none) and the access rules.</summary>
public sealed class ClientSecurity : IDisposable
{
    private ClientSecurity(ClientTls? tls, ClientUsers? users, string? authFile, bool peerTls, bool clientCertificates)
    {
        Tls = tls;
        AuthFile = authFile;
        Access = new ClientAccess(users, tlsOnly: tls is not null, peerTls, clientCertificates);
    }

    public ClientTls? Tls { get; }
    /// <summary>The users now (the auth file is reread when it changes: <see cref="AuthFileReloader"/>).</summary>
    public ClientUsers? Users => Access.Users;
    public string? AuthFile { get; }
    public ClientAccess Access { get; }

    /// <exception cref="InvalidDataException">A file is missing or malformed: the message names it.</exception>
    public static ClientSecurity Load(NodeSettings settings)
    {
        var users = settings.AuthFile is { } authFile ? LoadUsers(authFile) : null;
        var tls = settings.CertFile is { } cert ? ClientTls.Load(cert, settings.KeyFile!, settings.ClientCaFile) : null;
        var clientCertificates = tls is not null && settings.ClientCaFile is not null;
        if (users is not null) ClientAccess.CheckCertificateUsers(users, clientCertificates);
        return new ClientSecurity(tls, users, settings.AuthFile, settings.PeerCertFile is not null, clientCertificates);
    }

    /// <summary>Reads the auth file: at start, and again each time it changes.</summary>
    /// <exception cref="InvalidDataException">The file cannot be read, is malformed (the message names the line) or lists no user.</exception>
    public static ClientUsers LoadUsers(string authFile)
    {
        ClientUsers users;
        try
        {
            users = ClientUsers.Load(authFile);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"--auth-file {authFile}: {e.Message}");
        }
        catch (FormatException e)
        {
            throw new InvalidDataException($"--auth-file {e.Message}");
        }
        if (users.Count == 0)
            throw new InvalidDataException($"--auth-file {authFile}: lists no user (no client could make any call)");
        return users;
    }

    /// <summary>The startup lines: what is on and what is off.</summary>
    public IEnumerable<string> Describe()
    {
        yield return Tls is null
            ? "Client TLS: off (clients connect in plain text; --cert-file and --key-file turn it on)"
            : $"Client TLS: on ({Tls.Describe()}); plain-text connections carry only peer calls and ListMembers";
        yield return Users is null
            ? "Authentication: off (no --auth-file: every client may read, write and administer)"
            : $"Authentication: on ({Users.Count} users from {AuthFile}: {Users})";
    }

    public void Dispose() => Tls?.Dispose();
}
