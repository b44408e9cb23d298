using System.Diagnostics;

namespace RaftServer.Tests.Integration;

/// <summary>
/// Every TCP connection a node opens or accepts (peer links, forwarded calls, clients) waits at most
/// about a heartbeat before it sends a lost segment again, not the kernel's 200 ms
/// (Transport/TcpRetransmitFloor.cs, docs/design.md "The peer transport").
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class RetransmitFloorProcessTests
{
    [SkippableFact]
    public async Task A_nodes_connections_retransmit_after_a_heartbeat_not_the_kernels_200_ms()
    {
        var unavailable = TcpRetransmitTimeouts.Unavailable();
        Skip.If(unavailable is not null, unavailable);
        await using var cluster = new LocalCluster(3, "rto-floor");
        foreach (var id in cluster.Ids) cluster.Start(id);
        var leader = await cluster.WaitForLeaderAsync();
        var follower = cluster.Ids.First(id => id != leader);
        await cluster.SetAsync(follower, "forwarded", "1"); // opens the follower's channel of forwarded calls
        var pids = cluster.Ids.Select(id => cluster.Process(id).Pid).ToArray();
        var ports = cluster.Ids.Select(id => $":{cluster.Ports[id]}").ToArray();

        // Each node: a link to each peer and one from each, the follower's forwarding connection and its
        // accepted side, the test's client connection. Wait until the links are all up.
        var sw = Stopwatch.StartNew();
        List<(int Pid, string Local, string Remote, double RtoMs)> connections;
        do
        {
            connections = TcpRetransmitTimeouts.Of(pids).Where(c => ports.Any(p => c.Local.EndsWith(p) || c.Remote.EndsWith(p))).ToList();
            if (connections.Count >= 3 * 4 + 2) break;
            await Task.Delay(50);
        } while (sw.Elapsed < LocalCluster.Patience);
        var listing = string.Join("\n", connections.Select(c => $"pid {c.Pid} {c.Local} -> {c.Remote}: rto {c.RtoMs} ms"));
        Assert.True(connections.Count >= 3 * 4 + 2, $"expected the nodes' links, forwarding and client connections; ss shows:\n{listing}");
        // The kernel's timeout is at least its floor plus the round trip: 204 ms or more with the
        // default floor; with the 50 ms floor (the default heartbeat) 56 ms on loopback, up to about
        // 100 ms while a young connection's first round-trip samples still vary.
        Assert.All(connections, c => Assert.True(c.RtoMs < 200, $"a connection with the kernel's default floor:\n{listing}"));
    }
}
