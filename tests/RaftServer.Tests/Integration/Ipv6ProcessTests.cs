using RaftPS.Protocol;

namespace RaftServer.Tests.Integration;

/// <summary>
/// A cluster whose config.conf gives IPv6 addresses (::1): every connection a node opens to
/// another (peer messages, forwarded calls, the join, snapshot transfers) puts the address in a
/// URI or a socket address, where an IPv6 address must be bracketed or parsed as one.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class Ipv6ProcessTests
{
    [Fact]
    public async Task A_cluster_on_IPv6_addresses_elects_forwards_writes_sends_snapshots_and_takes_a_joining_node()
    {
        await using var cluster = new LocalCluster("::1", 3, "ipv6", "--snapshot-entries", "50", "--snapshot-log-bytes", "4096");
        foreach (var id in cluster.Ids) cluster.Start(id);
        var leader = await cluster.WaitForLeaderAsync();
        var follower = cluster.Ids.First(id => id != leader);
        Assert.True(await cluster.Process(leader).WaitForOutput($"[::1]:{cluster.Ports[leader]}", LocalCluster.Patience), cluster.Outputs());

        // A follower forwards a write to the leader over its gRPC channel to it.
        await cluster.SetAsync(follower, "through-follower", "1");
        // Enough writes that the leader compacts its log: a new node then needs its snapshot.
        for (var i = 0; i < 150; i++) await cluster.SetAsync(leader, $"k{i}", $"{i}");

        cluster.NewPort(3);
        await LocalCluster.RetryAsync(() => cluster.Client(leader).AddMemberAsync(
            new AddMemberRequest { Id = 3, Address = "::1", Port = cluster.Ports[3], Learner = true }, deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync);
        var joining = cluster.StartJoining(3, through: follower); // --join [::1]:PORT
        Assert.True(await joining.WaitForOutput("Installed the leader's snapshot", LocalCluster.Patience), cluster.Outputs());
        var status = await cluster.StatusAsync(leader);
        await cluster.WaitForAppliedAsync(3, status.CommitIndex);
        Assert.Equal("149", await cluster.GetAsync(3, "k149", stale: true));
        Assert.Equal("1", await cluster.GetAsync(3, "through-follower", stale: true));
    }
}
