using System.Security.Cryptography;
using System.Text;
using RaftServer.Api.Security;

namespace RaftServer.Tests.Api.Security;

public sealed class ClientUsersTests
{
    private static string Sha(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    [Fact]
    public void Finds_each_user_by_its_token_and_no_one_by_another()
    {
        var users = ClientUsers.Parse([
            "# users",
            "",
            $"ci write {Sha("ci-token")}",
            $"  ops   admin   {Sha("ops-token").ToUpperInvariant()}  ",
            $"dash read {Sha("dash-token")}",
        ], "users");
        Assert.Equal(3, users.Count);
        Assert.Equal(new ClientUser("ci", ClientRole.Write), users.Find("ci-token"));
        Assert.Equal(new ClientUser("ops", ClientRole.Admin), users.Find("ops-token"));
        Assert.Equal(new ClientUser("dash", ClientRole.Read), users.Find("dash-token"));
        Assert.Null(users.Find("ci-token "));
        Assert.Null(users.Find(""));
        Assert.Null(users.Find(Sha("ci-token"))); // the hash itself is no token
    }

    [Fact]
    public void The_hash_is_sha256_of_the_utf8_token()
    {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", ClientUsers.HashTokenHex("abc"));
    }

    [Theory]
    [InlineData("ci write", "expected 'NAME ROLE SHA256', found 2 fields")]
    [InlineData("ci root 0000000000000000000000000000000000000000000000000000000000000000", "role 'root' is not read, write or admin")]
    [InlineData("ci read 00", "is not 64 hex digits")]
    [InlineData("ci read zz00000000000000000000000000000000000000000000000000000000000000", "is not 64 hex digits")]
    public void Refuses_a_malformed_line_naming_the_file_and_line(string line, string message)
    {
        var e = Assert.Throws<FormatException>(() => ClientUsers.Parse(["# header", line], "/etc/raftps/users"));
        Assert.StartsWith("/etc/raftps/users:2: ", e.Message);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Refuses_a_user_listed_twice()
    {
        var e = Assert.Throws<FormatException>(() => ClientUsers.Parse([$"ci read {Sha("a")}", $"ci write {Sha("b")}"], "users"));
        Assert.Contains("user 'ci' is listed twice", e.Message);
    }
}
