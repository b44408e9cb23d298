using System.Security.Cryptography;
using System.Text;

namespace RaftPS.Client;

/// <summary>
/// Tokens for the nodes' --auth-file: 256 random bits as base64url text, and the file's line for
/// one (NAME ROLE SHA256-HEX). The hash is what the server keeps; see the server's ClientUsers for
/// why SHA-256 suffices for random tokens.
/// </summary>
internal static class UserTokens
{
    public static readonly string[] Roles = ["read", "write", "admin"];

    public static char[] NewToken()
    {
        var bytes = RandomNumberGenerator.GetBytes(32);
        var text = Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        CryptographicOperations.ZeroMemory(bytes);
        return text.ToCharArray();
    }

    public static string Hash(ReadOnlySpan<char> token)
    {
        var bytes = Encoding.UTF8.GetBytes(token.ToArray());
        try
        {
            return Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant();
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    /// <summary>Writes (or, with <paramref name="replace"/>, replaces) the line of <paramref name="name"/> in the auth file.</summary>
    /// <exception cref="InvalidOperationException">The user is listed already and <paramref name="replace"/> is false.</exception>
    public static void WriteLine(string authFile, string name, string role, string hash, bool replace)
    {
        var lines = File.Exists(authFile) ? File.ReadAllLines(authFile).ToList() : ["# RaftPS users: NAME ROLE SHA256-OF-TOKEN (New-RaftUserToken writes these lines)"];
        var index = lines.FindIndex(l => l.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries) is { Length: > 0 } f && f[0] == name);
        var line = $"{name} {role} {hash}";
        if (index >= 0)
        {
            if (!replace) throw new InvalidOperationException($"'{authFile}' lists the user '{name}' already; -Force gives it a new token");
            lines[index] = line;
        }
        else lines.Add(line);
        CertificateFactory.WriteSecret(authFile, string.Join("\n", lines) + "\n");
    }
}
