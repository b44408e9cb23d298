namespace RaftServer.Api.Security;

/// <summary>
/// What a client may do, each role including the ones before it: read (Get, Range, Watch, Status),
/// write (Set, Delete, conditional writes, leases), admin (Suspend, Resume, membership, leadership
/// transfer). <see cref="Public"/> is the level of the calls any client may make with no credentials.
/// </summary>
public enum ClientRole
{
    Public = 0,
    Read = 1,
    Write = 2,
    Admin = 3,
}

public static class ClientRoleNames
{
    public static string Name(ClientRole role) => role switch
    {
        ClientRole.Read => "read",
        ClientRole.Write => "write",
        ClientRole.Admin => "admin",
        _ => "public",
    };

    /// <summary>read, write or admin (case-insensitive); null for anything else.</summary>
    public static ClientRole? Parse(string text) => text.ToLowerInvariant() switch
    {
        "read" => ClientRole.Read,
        "write" => ClientRole.Write,
        "admin" => ClientRole.Admin,
        _ => null,
    };
}
