using Microsoft.Extensions.Logging.Abstractions;
using RaftServer.Cluster;
using RaftServer.Consensus;
using RaftServer.Transport;
using P = RaftPS.Protocol;

namespace RaftServer.Tests.Cluster;

/// <summary>The runtime membership, and the readers that must follow it when it changes.</summary>
public sealed class MembershipTests
{
    private static Member M(int id, int port = 0, MemberRole role = MemberRole.Voter) => new(new NodeAddress(id, "127.0.0.1", port == 0 ? 6000 + id : port), role);

    [Fact]
    public void A_member_set_is_ordered_by_id_and_refuses_an_id_twice()
    {
        var set = new MemberSet([M(3), M(1), M(2, role: MemberRole.Learner)]);
        Assert.Equal([1, 2, 3], set.Members.Select(m => m.Id));
        Assert.Equal([1, 3], set.VoterIds);
        Assert.Equal(MemberRole.Learner, set.Find(2)!.Role);
        Assert.Null(set.Find(4));
        var e = Assert.Throws<ArgumentException>(() => new MemberSet([M(1), M(1, 7000)]));
        Assert.Contains("node 1 is listed twice", e.Message);
    }

    [Fact]
    public void The_config_file_bootstraps_every_node_as_a_voter()
    {
        var config = ClusterConfig.Parse(["0 127.0.0.1 50000", "1 127.0.0.1 50001"]);
        var set = MemberSet.FromConfig(config);
        Assert.All(set.Members, m => Assert.Equal(MemberRole.Voter, m.Role));
        Assert.Equal([0, 1], set.VoterIds);
    }

    [Fact]
    public void An_update_replaces_the_members_and_tells_the_listeners()
    {
        var membership = new Membership(1, new MemberSet([M(1), M(2)]));
        MemberSet? seen = null;
        membership.Changed += s => seen = s;
        var next = new MemberSet([M(1), M(2), M(3)]);

        membership.Update(next);

        Assert.Same(next, membership.Current);
        Assert.Same(next, seen);
        Assert.True(membership.Contains(3));
    }

    [Fact]
    public async Task The_peer_transport_opens_and_closes_links_as_the_membership_changes()
    {
        var membership = new Membership(1, new MemberSet([M(1), M(2), M(3)]));
        await using var transport = new PeerTransport(membership, NullLogger.Instance);
        Assert.Null(transport.Peer(1)); // never a link to itself
        var two = transport.Peer(2)!;
        Assert.NotNull(transport.Peer(3));

        membership.Update(new MemberSet([M(1), M(2), M(4)]));
        Assert.Null(transport.Peer(3));
        Assert.NotNull(transport.Peer(4));
        Assert.Same(two, transport.Peer(2)); // unchanged members keep their link

        membership.Update(new MemberSet([M(1), M(2, port: 7777), M(4)]));
        Assert.NotSame(two, transport.Peer(2)); // a member that moved gets a new link
        Assert.Equal(7777, transport.Peer(2)!.Address.Port);
    }

    private static P.MessageBatch Batch(int from, int to) => new()
    {
        From = from,
        Messages = { new P.RaftMessage { Type = P.MessageType.Heartbeat, From = from, To = to, Term = 1 } },
    };

    [Fact]
    public void The_inbox_takes_messages_only_from_current_members_to_this_node()
    {
        var membership = new Membership(1, new MemberSet([M(1), M(2), M(3)]));

        var taken = PeerInbox.ToMessages(membership, Batch(2, 1));
        Assert.Equal(MessageType.Heartbeat, Assert.Single(taken!).Type);
        Assert.Null(PeerInbox.ToMessages(membership, Batch(9, 1)));   // not a member
        Assert.Null(PeerInbox.ToMessages(membership, Batch(2, 3)));   // addressed to another node
        var forged = Batch(2, 1);
        forged.Messages[0].From = 3;
        Assert.Null(PeerInbox.ToMessages(membership, forged));        // a message not from the batch's sender

        membership.Update(new MemberSet([M(1), M(3)]), [M(2)], new HashSet<int> { 2 });
        Assert.Single(PeerInbox.ToMessages(membership, Batch(2, 1))!); // removed but departing: its answers count
        Assert.False(membership.IsGone(2));
        membership.Update(new MemberSet([M(1), M(3)]), []);          // the leader no longer sends to it
        Assert.Null(PeerInbox.ToMessages(membership, Batch(2, 1)));   // removed: its batches are dropped
        Assert.True(membership.IsGone(2));
    }

    [Fact]
    public void A_sender_the_configuration_does_not_list_yet_is_linked_to_when_it_says_where_it_listens_unless_it_was_removed()
    {
        var membership = new Membership(1, new MemberSet([M(1), M(2), M(3)]));
        var changes = 0;
        membership.Changed += _ => changes++;

        Assert.Null(PeerInbox.ToMessages(membership, Batch(9, 1)));         // no address: dropped, nothing learned
        Assert.Empty(membership.Remotes);

        var fromNewLeader = Batch(9, 1);
        fromNewLeader.FromHost = "10.0.0.9";
        fromNewLeader.FromPort = 7009;
        Assert.Single(PeerInbox.ToMessages(membership, fromNewLeader)!);
        Assert.Equal(new NodeAddress(9, "10.0.0.9", 7009), Assert.Single(membership.Remotes).Address);
        Assert.True(membership.IsPeer(9));
        Assert.False(membership.Contains(9));                                 // linked to, never listed
        Assert.Equal(1, changes);                                             // the transport opens the link
        PeerInbox.ToMessages(membership, fromNewLeader);
        Assert.Equal(1, changes);                                             // once

        // The configuration catches up and lists it: it is a member, no longer a remote.
        membership.Update(new MemberSet([M(1), M(2), M(3), M(9)]), [], new HashSet<int>());
        Assert.Empty(membership.Remotes);

        // A node the configuration removed is never linked to again, whatever it says.
        membership.Update(new MemberSet([M(1), M(3), M(9)]), [], new HashSet<int> { 2 });
        var fromRemoved = Batch(2, 1);
        fromRemoved.FromHost = "127.0.0.1";
        fromRemoved.FromPort = 6002;
        Assert.Null(PeerInbox.ToMessages(membership, fromRemoved));
        Assert.Empty(membership.Remotes);
        Assert.False(membership.IsPeer(2));
    }

    [Fact]
    public async Task A_learned_remote_gets_a_link_from_the_transport()
    {
        var membership = new Membership(1, new MemberSet([M(1), M(2)])) { SelfAddress = new NodeAddress(1, "127.0.0.1", 6001) };
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        var transport = new PeerTransport(membership, NullLogger.Instance);
        try
        {
            Assert.Null(transport.Peer(9));
            Assert.True(membership.LearnRemote(new NodeAddress(9, "127.0.0.1", port)));
            Assert.NotNull(transport.Peer(9));
            Assert.Equal(port, transport.Peer(9)!.Address.Port);
        }
        finally
        {
            await transport.DisposeAsync();
        }
    }
}
