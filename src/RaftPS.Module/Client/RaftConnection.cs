using System.Collections.Concurrent;
using System.Security.Cryptography;
using RaftPS.Client;

namespace RaftPS;

/// <summary>
/// A client's handle on one node of a cluster: calls go to this node first, and on to the other
/// members when it is down or has no leader. The connection carries a client id and numbers its
/// writes, so a write retried after an error applies exactly once.
/// </summary>
/// <remarks>
/// Writes kept in flight together each use their own session (client id + sequence), because the
/// server remembers only the last sequence per client id: one outstanding write per session keeps
/// every retry recognisable. <see cref="ClientId"/> is the first session's id.
/// </remarks>
public sealed class RaftConnection
{
    private readonly ConcurrentBag<WriteSession> _idle = new();
    private int _sessions;

    public RaftConnection(string address, int port) : this(address, port, null)
    {
    }

    internal RaftConnection(string address, int port, ConnectionSecurity? security)
    {
        Address = address;
        Port = port;
        Security = security;
        var first = NewSession();
        ClientId = first.ClientId;
        _idle.Add(first);
    }

    public string Address { get; }
    public int Port { get; }

    /// <summary>Calls go over TLS (Connect-RaftNode -UseTls).</summary>
    public bool UseTls => Security?.UseTls == true;

    /// <summary>Calls carry a token (Connect-RaftNode -Token or -Credential); the token itself is never shown.</summary>
    public bool HasToken => Security?.Token is not null;

    /// <summary>TLS settings and token; null for a plain connection with no token.</summary>
    internal ConnectionSecurity? Security { get; }

    /// <summary>The client id of this connection's first write session.</summary>
    public ulong ClientId { get; }

    /// <summary>How many write sessions (client ids) the connection has used so far.</summary>
    public int SessionCount => Volatile.Read(ref _sessions);

    internal RaftEndpoint Endpoint => new(Address, Port);

    internal WriteSession RentSession() => _idle.TryTake(out var session) ? session : NewSession();

    internal void ReturnSession(WriteSession session) => _idle.Add(session);

    private WriteSession NewSession()
    {
        Interlocked.Increment(ref _sessions);
        ulong id;
        do id = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8)); while (id == 0);
        return new WriteSession(id);
    }

    private string? _text;

    public override string ToString() => _text ??= $"{Address}:{Port}";
}
