using System.Security.Cryptography;
using System.Text;
using Grpc.Core;
using RaftServer.Api.Security;

namespace RaftServer.Tests.Api.Security;

public sealed class ClientAccessTests
{
    private static readonly ClientUsers Users = ClientUsers.Parse([
        $"reader read {Sha("r")}",
        $"writer write {Sha("w")}",
        $"root admin {Sha("a")}",
    ], "users");

    private static string Sha(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    private static RpcException? Refusal(ClientAccess access, string method, string? token)
    {
        var headers = new Metadata();
        if (token is not null) headers.Add("authorization", $"Bearer {token}");
        try
        {
            access.Check(new TestCallContext($"/raftps.RaftClient/{method}", headers));
            return null;
        }
        catch (RpcException e)
        {
            return e;
        }
    }

    [Theory]
    [InlineData("Get", "r")]
    [InlineData("Get", "w")]
    [InlineData("Set", "w")]
    [InlineData("Set", "a")]
    [InlineData("Suspend", "a")]
    [InlineData("ListMembers", null)]
    public void Allows_a_role_that_covers_the_call(string method, string? token) =>
        Assert.Null(Refusal(new ClientAccess(Users, tlsOnly: false), method, token));

    [Theory]
    [InlineData("Set", "r", "Set needs the write role; user 'reader' has read")]
    [InlineData("Suspend", "w", "Suspend needs the admin role; user 'writer' has write")]
    [InlineData("AddMember", "w", "AddMember needs the admin role")]
    [InlineData("TransferLeadership", "r", "TransferLeadership needs the admin role")]
    public void Refuses_a_role_too_small_with_PermissionDenied_naming_the_role(string method, string token, string message)
    {
        var e = Refusal(new ClientAccess(Users, tlsOnly: false), method, token);
        Assert.Equal(StatusCode.PermissionDenied, e?.StatusCode);
        Assert.Contains(message, e!.Status.Detail);
    }

    [Theory]
    [InlineData("/raftps.raftclient/set", null, StatusCode.Unauthenticated)]
    [InlineData("/RAFTPS.RAFTCLIENT/SUSPEND", "w", StatusCode.PermissionDenied)]
    [InlineData("/raftps.raftclient/removemember", "r", StatusCode.PermissionDenied)]
    public void Checks_a_path_in_other_letter_case_like_the_path_the_routing_serves(string path, string? token, StatusCode refused)
    {
        var headers = new Metadata();
        if (token is not null) headers.Add("authorization", $"Bearer {token}");
        var e = Assert.Throws<RpcException>(() => new ClientAccess(Users, tlsOnly: false).Check(new TestCallContext(path, headers)));
        Assert.Equal(refused, e.StatusCode);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("unknown")]
    public void Refuses_a_missing_or_unknown_token_with_Unauthenticated(string? token) =>
        Assert.Equal(StatusCode.Unauthenticated, Refusal(new ClientAccess(Users, tlsOnly: false), "Get", token)?.StatusCode);

    [Fact]
    public void Refuses_an_unmapped_client_method_even_to_an_admin() =>
        Assert.Equal(StatusCode.PermissionDenied, Refusal(new ClientAccess(Users, tlsOnly: false), "Unheard", "a")?.StatusCode);

    [Fact]
    public void Without_an_auth_file_every_call_is_allowed()
    {
        Assert.False(ClientAccess.Open.AuthEnabled);
        Assert.Null(Refusal(ClientAccess.Open, "Suspend", null));
        Assert.Null(Refusal(ClientAccess.Open, "Set", "anything"));
    }

    [Fact]
    public void Peer_calls_are_not_checked_as_client_calls()
    {
        var access = new ClientAccess(Users, tlsOnly: false);
        access.Check(new TestCallContext("/raftps.RaftPeer/InstallSnapshot", new Metadata()));
    }
}
