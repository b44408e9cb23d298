using RaftServer.Api.Security;
using P = RaftPS.Protocol;

namespace RaftServer.Tests.Api.Security;

public sealed class ClientMethodRolesTests
{
    [Fact]
    public void Every_method_of_the_client_service_is_mapped_to_a_role()
    {
        var methods = P.RaftClient.Descriptor.Methods.Select(m => m.Name).ToList();
        Assert.NotEmpty(methods);
        var unmapped = methods.Where(m => ClientMethodRoles.For(m) is null).ToList();
        Assert.True(unmapped.Count == 0, $"client RPCs with no role in ClientMethodRoles: {string.Join(", ", unmapped)}");
    }

    [Fact]
    public void The_method_paths_are_those_grpc_serves()
    {
        Assert.Equal(ClientMethodRoles.ServicePrefix, $"/{P.RaftClient.Descriptor.FullName}/");
    }

    [Theory]
    [InlineData("Get", ClientRole.Read)]
    [InlineData("Range", ClientRole.Read)]
    [InlineData("Watch", ClientRole.Read)]
    [InlineData("Status", ClientRole.Read)]
    [InlineData("Set", ClientRole.Write)]
    [InlineData("Delete", ClientRole.Write)]
    [InlineData("Write", ClientRole.Write)]
    [InlineData("LeaseGrant", ClientRole.Write)]
    [InlineData("Suspend", ClientRole.Admin)]
    [InlineData("Resume", ClientRole.Admin)]
    [InlineData("AddMember", ClientRole.Admin)]
    [InlineData("PromoteMember", ClientRole.Admin)]
    [InlineData("RemoveMember", ClientRole.Admin)]
    [InlineData("TransferLeadership", ClientRole.Admin)]
    [InlineData("ListMembers", ClientRole.Public)]
    public void Maps_each_call_to_the_role_the_docs_give(string method, ClientRole role) =>
        Assert.Equal(role, ClientMethodRoles.For(method));

    [Fact]
    public void An_unknown_client_method_has_no_role_and_peer_methods_are_not_client_calls()
    {
        Assert.Null(ClientMethodRoles.ForPath("/raftps.RaftClient/Unheard", out var client));
        Assert.True(client);
        Assert.Equal(ClientRole.Public, ClientMethodRoles.ForPath($"/{P.RaftPeer.Descriptor.FullName}/InstallSnapshot", out client));
        Assert.False(client);
    }

    [Theory]
    [InlineData("/raftps.raftclient/set", ClientRole.Write)]
    [InlineData("/RAFTPS.RAFTCLIENT/STATUS", ClientRole.Read)]
    [InlineData("/raftps.RaftClient/removemember", ClientRole.Admin)]
    public void A_path_in_other_letter_case_needs_the_same_role_the_routing_serves_it_as(string path, ClientRole role)
    {
        // ASP.NET Core routes paths without regard to case: a case-sensitive check let these through unchecked.
        Assert.Equal(role, ClientMethodRoles.ForPath(path, out var client));
        Assert.True(client);
    }

    [Fact]
    public void A_path_of_no_known_service_is_refused()
    {
        Assert.Null(ClientMethodRoles.ForPath("/raftps.Other/Set", out var client));
        Assert.True(client);
        Assert.Equal("Set", ClientMethodRoles.CanonicalName("sET"));
        Assert.Null(ClientMethodRoles.CanonicalName("Unheard"));
    }
}
