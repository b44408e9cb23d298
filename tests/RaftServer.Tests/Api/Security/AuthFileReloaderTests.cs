using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using RaftServer.Api.Security;
using RaftServer.Tests.Storage;

namespace RaftServer.Tests.Api.Security;

public sealed class AuthFileReloaderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("raftps-auth-").FullName;
    private string Path => System.IO.Path.Combine(_dir, "users");

    private static string Line(string name, string role, string token) =>
        $"{name} {role} {Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)))}";

    private ClientAccess Start(params string[] lines)
    {
        File.WriteAllLines(Path, lines);
        return new ClientAccess(ClientSecurity.LoadUsers(Path), tlsOnly: false);
    }

    [Fact]
    public void A_reload_adds_a_user_and_changes_a_role()
    {
        var access = Start(Line("ci", "read", "t1"));
        var log = new ListLogger();
        using var reloader = new AuthFileReloader(Path, access, log, TimeSpan.FromHours(1));
        File.WriteAllLines(Path, [Line("ci", "write", "t1"), Line("ops", "admin", "t2")]);

        Assert.True(reloader.Reload("test"));
        Assert.Equal(ClientRole.Write, access.Users!.Find("t1")!.Role);
        Assert.Equal("ops", access.Users.Find("t2")!.Name);
        Assert.Contains(log.Lines, l => l.StartsWith("Information:Reloaded the users of --auth-file", StringComparison.Ordinal) && l.Contains("2 users"));
    }

    [Theory]
    [InlineData("ci superuser 00", "role 'superuser' is not read, write or admin")]
    [InlineData("# nobody left", "lists no user")]
    public void A_bad_file_is_refused_with_its_reason_and_the_users_before_it_stay(string content, string reason)
    {
        var access = Start(Line("ci", "write", "t1"));
        var log = new ListLogger();
        using var reloader = new AuthFileReloader(Path, access, log, TimeSpan.FromHours(1));
        File.WriteAllText(Path, content + "\n");

        Assert.False(reloader.Reload("test"));
        Assert.Equal(ClientRole.Write, access.Users!.Find("t1")!.Role);
        var error = Assert.Single(log.Lines, l => l.StartsWith("Error:", StringComparison.Ordinal));
        Assert.Contains(reason, error);
        Assert.Contains("the users before it stay in effect", error);
    }

    [Fact]
    public void A_missing_file_is_refused_and_the_users_before_it_stay()
    {
        var access = Start(Line("ci", "write", "t1"));
        var log = new ListLogger();
        using var reloader = new AuthFileReloader(Path, access, log, TimeSpan.FromHours(1));
        File.Delete(Path);

        Assert.True(reloader.ReloadIfChanged());
        Assert.NotNull(access.Users!.Find("t1"));
        Assert.False(reloader.ReloadIfChanged()); // logged once, not at every poll
        Assert.Single(log.Lines, l => l.StartsWith("Error:", StringComparison.Ordinal));
    }

    [Fact]
    public void An_unchanged_file_is_not_reread()
    {
        var access = Start(Line("ci", "write", "t1"));
        using var reloader = new AuthFileReloader(Path, access, new ListLogger(), TimeSpan.FromHours(1));
        Assert.False(reloader.ReloadIfChanged());
    }

    [Fact]
    public void The_poll_picks_up_a_new_user_by_itself()
    {
        var access = Start(Line("ci", "write", "t1"));
        using var reloader = new AuthFileReloader(Path, access, new ListLogger(), TimeSpan.FromMilliseconds(20));
        File.AppendAllLines(Path, [Line("late", "read", "t3")]);

        var clock = Stopwatch.StartNew();
        while (access.Users!.Find("t3") is null && clock.Elapsed < TimeSpan.FromSeconds(10)) Thread.Sleep(10);
        Assert.Equal("late", access.Users!.Find("t3")?.Name);
    }

    [Fact]
    public void A_node_without_an_auth_file_takes_no_users()
    {
        var access = new ClientAccess(null, tlsOnly: false);
        Assert.Throws<InvalidOperationException>(() => access.ReplaceUsers(ClientUsers.Parse([Line("ci", "write", "t1")], "users")));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
