using System.Security.Cryptography;
using System.Text;

namespace RaftServer.Api.Security;

/// <summary>A user of the auth file: a name for log lines and messages, and a role.</summary>
public sealed record ClientUser(string Name, ClientRole Role);

/// <summary>
/// The users of --auth-file: lines of <c>NAME ROLE SHA256</c> (role read, write or admin; the
/// SHA-256 of the user's token, 64 hex digits) or <c>NAME ROLE certificate</c> (the user proves who
/// it is with a client certificate whose subject's common name is NAME, issued by --client-ca-file),
/// blank lines and <c>#</c> comments ignored.
/// Only hashes are kept: a stolen file gives no token. SHA-256 rather than a slow password hash
/// (PBKDF2) because the tokens are 256-bit random values (New-RaftUserToken makes them): nothing can
/// be guessed, so slowing each guess buys nothing while it would cost every call its CPU.
/// </summary>
public sealed class ClientUsers
{
    public const int HashBytes = 32;
    /// <summary>The third field of a user who authenticates with a client certificate.</summary>
    public const string CertificateField = "certificate";
    private readonly (byte[] Hash, ClientUser User)[] _users;
    private readonly Dictionary<string, ClientUser> _byCertificate;

    private ClientUsers((byte[], ClientUser)[] users, Dictionary<string, ClientUser> byCertificate)
    {
        _users = users;
        _byCertificate = byCertificate;
    }

    public int Count => _users.Length + _byCertificate.Count;

    /// <summary>The users who authenticate with a client certificate.</summary>
    public IReadOnlyCollection<string> CertificateUsers => _byCertificate.Keys;

    /// <exception cref="FormatException">A malformed line: the message names the file and line.</exception>
    /// <exception cref="IOException"></exception>
    public static ClientUsers Load(string path) => Parse(File.ReadAllLines(path), path);

    public static ClientUsers Parse(IEnumerable<string> lines, string source)
    {
        var users = new List<(byte[], ClientUser)>();
        var byCertificate = new Dictionary<string, ClientUser>(StringComparer.Ordinal);
        var names = new HashSet<string>(StringComparer.Ordinal);
        var number = 0;
        foreach (var raw in lines)
        {
            number++;
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            var fields = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length != 3)
                throw new FormatException($"{source}:{number}: expected 'NAME ROLE SHA256', found {fields.Length} fields");
            var role = ClientRoleNames.Parse(fields[1])
                ?? throw new FormatException($"{source}:{number}: role '{fields[1]}' is not read, write or admin");
            var byCert = string.Equals(fields[2], CertificateField, StringComparison.OrdinalIgnoreCase);
            if (!byCert && (fields[2].Length != HashBytes * 2 || !IsHex(fields[2])))
                throw new FormatException($"{source}:{number}: the token hash of '{fields[0]}' is not 64 hex digits (a SHA-256), nor '{CertificateField}'");
            if (!names.Add(fields[0]))
                throw new FormatException($"{source}:{number}: user '{fields[0]}' is listed twice");
            if (byCert) byCertificate.Add(fields[0], new ClientUser(fields[0], role));
            else users.Add((Convert.FromHexString(fields[2]), new ClientUser(fields[0], role)));
        }
        return new ClientUsers(users.ToArray(), byCertificate);
    }

    /// <summary>The user whose token this is, or null. Compares against every user in constant time per hash.</summary>
    public ClientUser? Find(ReadOnlySpan<char> token)
    {
        if (token.IsEmpty) return null;
        Span<byte> hash = stackalloc byte[HashBytes];
        HashToken(token, hash);
        ClientUser? found = null;
        // Every hash is compared (no early exit), each in constant time: the time taken says
        // nothing about how close a guess came to a stored hash.
        foreach (var (stored, user) in _users)
            if (CryptographicOperations.FixedTimeEquals(stored, hash)) found = user;
        return found;
    }

    /// <summary>The user whose client certificate names <paramref name="commonName"/>, or null.</summary>
    public ClientUser? FindByCertificate(string commonName) => _byCertificate.GetValueOrDefault(commonName);

    /// <summary>SHA-256 of the token's UTF-8 bytes: the hash the auth file holds.</summary>
    public static void HashToken(ReadOnlySpan<char> token, Span<byte> hash)
    {
        var max = Encoding.UTF8.GetMaxByteCount(token.Length);
        var buffer = max <= 512 ? stackalloc byte[max] : new byte[max];
        var n = Encoding.UTF8.GetBytes(token, buffer);
        SHA256.HashData(buffer[..n], hash);
        CryptographicOperations.ZeroMemory(buffer[..n]);
    }

    public static string HashTokenHex(string token)
    {
        Span<byte> hash = stackalloc byte[HashBytes];
        HashToken(token, hash);
        return Convert.ToHexStringLower(hash);
    }

    private static bool IsHex(string s)
    {
        foreach (var c in s)
            if (!char.IsAsciiHexDigit(c)) return false;
        return true;
    }

    public override string ToString() => string.Join(", ",
        _users.Select(u => $"{u.User.Name} ({ClientRoleNames.Name(u.User.Role)})")
            .Concat(_byCertificate.Values.Select(u => $"{u.Name} ({ClientRoleNames.Name(u.Role)}, by certificate)")));
}
