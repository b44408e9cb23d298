using RaftServer.Hosting;

namespace RaftServer.Api.Security;

/// <summary>The node's client security as its options set it: TLS (or none) and the access rules.</summary>
public sealed class ClientSecurity : IDisposable
{
    private ClientSecurity(ClientTls? tls, ClientUsers? users, string? authFile, bool peerTls)
    {
        Tls = tls;
        Users = users;
        AuthFile = authFile;
        Access = new ClientAccess(users, tlsOnly: tls is not null, peerTls);
    }

    public ClientTls? Tls { get; }
    public ClientUsers? Users { get; }
    public string? AuthFile { get; }
    public ClientAccess Access { get; }

    /// <exception cref="InvalidDataException">A file is missing or malformed: the message names it.</exception>
    public static ClientSecurity Load(NodeSettings settings)
    {
        ClientUsers? users = null;
        if (settings.AuthFile is { } authFile)
        {
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
        }
        var tls = settings.CertFile is { } cert ? ClientTls.Load(cert, settings.KeyFile!, settings.ClientCaFile) : null;
        return new ClientSecurity(tls, users, settings.AuthFile, settings.PeerCertFile is not null);
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
