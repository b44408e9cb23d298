using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using RaftPS.Protocol;
using Xunit.Abstractions;

namespace RaftServer.Tests.Integration;

/// <summary>
/// Peer TLS with real processes (docs/security.md, "Peer TLS"): a cluster whose nodes talk over
/// mutually authenticated TLS works end to end (elections, replication, forwarded calls, snapshots),
/// and what does not fit is refused with a clear line on both sides: a certificate of another CA,
/// expired, naming another node than the hello, a batch claiming another member, a plain peer.
/// Peers' forwarded calls are outside the clients' connection limit, and a joining node asks a
/// member for the members over peer TLS.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class PeerTlsProcessTests(ITestOutputHelper output)
{
    private static readonly TimeSpan LogWait = TimeSpan.FromSeconds(10);

    /// <summary>A cluster of <paramref name="size"/> whose nodes get their peer TLS options from <paramref name="args"/>
    /// (default: a certificate naming the node, from the cluster's test CA in its folder).</summary>
    private static (LocalCluster Cluster, PeerTlsFiles Files) Cluster(string name, Func<PeerTlsFiles, int, string[]>? args = null, int size = 3, params string[] extra)
    {
        PeerTlsFiles? files = null;
        var cluster = new LocalCluster(size, name, extra) { NodeArgs = id => args is null ? files!.Arguments(id) : args(files!, id) };
        files = new PeerTlsFiles(Path.Combine(cluster.Dir, "pki"));
        return (cluster, files);
    }

    private static async Task<bool> AnyLogs(LocalCluster cluster, IEnumerable<int> nodes, string text)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < LogWait)
        {
            if (nodes.Any(id => cluster.Process(id).Output.Contains(text, StringComparison.Ordinal))) return true;
            await Task.Delay(50);
        }
        return false;
    }

    [Fact]
    public async Task A_peer_TLS_cluster_elects_replicates_forwards_a_followers_write_and_sends_a_lagging_node_a_snapshot()
    {
        var (cluster, _) = Cluster("ptls-basic", extra: ["--quiet", "--snapshot-entries", "300"]);
        await using var scope = cluster;
        foreach (var id in cluster.Ids) cluster.Start(id);
        var leader = await cluster.WaitForLeaderAsync();
        foreach (var id in cluster.Ids)
            Assert.Contains($"Peer TLS: on (certificate CN=node-{id} naming node {id}", cluster.Process(id).Output);

        var followers = cluster.Ids.Where(i => i != leader).ToArray();
        // A follower forwards a client's write to the leader over peer TLS (gRPC inside the TLS connection).
        var forwarded = await cluster.SetAsync(followers[0], "forwarded", "via-follower");
        Assert.Equal("via-follower", await cluster.GetAsync(leader, "forwarded"));

        var lagging = followers[1];
        cluster.Kill(lagging);
        long last = forwarded.Index;
        var writers = Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
        {
            long mine = 0;
            for (var i = 0; i < 150; i++) mine = Math.Max(mine, (await cluster.SetAsync(leader, $"k{w}-{i % 40}", $"v{i}")).Index);
            return mine;
        })).ToArray();
        foreach (var index in await Task.WhenAll(writers)) last = Math.Max(last, index);
        var status = await cluster.StatusAsync(leader);
        Assert.True(status.FirstIndex > forwarded.Index, $"the leader's log should be compacted past the lagging node's (first index {status.FirstIndex})");

        cluster.Start(lagging);
        Assert.True(await cluster.Process(lagging).WaitForOutput("Installed the leader's snapshot", LocalCluster.Patience), cluster.Outputs());
        await cluster.WaitForAppliedAsync(lagging, last);
        Assert.Equal("via-follower", await cluster.GetAsync(lagging, "forwarded", stale: true));
        Assert.Equal("v149", await cluster.GetAsync(lagging, "k7-29", stale: true));
        Assert.DoesNotContain("Refused", cluster.Outputs());
        output.WriteLine($"leader {leader}, forwarded through {followers[0]} at index {forwarded.Index}, node {lagging} caught up to {last} by snapshot");
    }

    [Fact]
    public async Task With_client_TLS_and_peer_TLS_a_follower_forwards_a_TLS_clients_write_to_the_leader()
    {
        var (cluster, _) = Cluster("ptls-client", (files, id) =>
        {
            var (cert, key) = files.Node($"node-{id}", id);
            return ["--cert-file", cert, "--key-file", key, "--peer-cert-file", cert, "--peer-key-file", key, "--peer-ca-file", files.CaPath];
        }, extra: ["--quiet"]);
        await using var scope = cluster;
        foreach (var id in cluster.Ids) cluster.Start(id);
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        var channels = cluster.Ids.ToDictionary(id => id, id => GrpcChannel.ForAddress($"https://127.0.0.1:{cluster.Ports[id]}",
            new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = false }));
        try
        {
            var leader = -1;
            var sw = Stopwatch.StartNew();
            while (leader < 0 && sw.Elapsed < LocalCluster.Patience)
            {
                try
                {
                    var known = await new RaftClient.RaftClientClient(channels[0]).GetLeaderAsync(new GetLeaderRequest(), deadline: DateTime.UtcNow.AddSeconds(2));
                    if (known.Leader is { } l && cluster.Ids.Contains(l.Id)) leader = l.Id;
                }
                catch (RpcException) { }
                if (leader < 0) await Task.Delay(50);
            }
            Assert.True(leader >= 0, cluster.Outputs());
            var follower = cluster.Ids.First(i => i != leader);
            var client = new RaftClient.RaftClientClient(channels[follower]);
            SetReply? reply = null;
            sw.Restart();
            while (reply is null)
            {
                try
                {
                    reply = await client.SetAsync(new SetRequest { Key = "tls-forwarded", Value = ByteString.CopyFromUtf8("yes") }, deadline: DateTime.UtcNow.AddSeconds(5));
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable && sw.Elapsed < LocalCluster.Patience && !e.Status.Detail.Contains("does not forward"))
                {
                    await Task.Delay(50); // the leader changed meanwhile
                }
            }
            var read = await new RaftClient.RaftClientClient(channels[follower]).GetAsync(new GetRequest { Key = "tls-forwarded" }, deadline: DateTime.UtcNow.AddSeconds(5));
            Assert.Equal("yes", read.Value.ToStringUtf8());
            output.WriteLine($"leader {leader}; node {follower} forwarded the write (index {reply.Index})");
        }
        finally
        {
            foreach (var c in channels.Values) c.Dispose();
            handler.Dispose();
        }
    }

    [Fact]
    public async Task Peers_forwarded_calls_over_peer_TLS_neither_count_toward_nor_wait_for_the_client_connection_limit()
    {
        var (cluster, _) = Cluster("ptls-limits", extra: ["--quiet", "--max-client-connections", "2"]);
        await using var scope = cluster;
        foreach (var id in cluster.Ids) cluster.Start(id);
        var leader = await cluster.WaitForLeaderAsync();
        var follower = cluster.Ids.First(i => i != leader);
        var address = $"http://127.0.0.1:{cluster.Ports[leader]}";
        // The cluster's own channel to the leader is one client connection; this one takes the last place.
        using var second = GrpcChannel.ForAddress(address);
        await new RaftClient.RaftClientClient(second).GetLeaderAsync(new GetLeaderRequest(), deadline: DateTime.UtcNow.AddSeconds(5));
        await AssertRefused(address);

        // The follower forwards a write to the leader over peer TLS: a peer's connection, not a client's.
        var sw = Stopwatch.StartNew();
        SetReply? reply = null;
        while (reply is null)
        {
            try
            {
                reply = await cluster.Client(follower).SetAsync(new SetRequest { Key = "forwarded", Value = ByteString.CopyFromUtf8("past the client limit") },
                    deadline: DateTime.UtcNow.AddSeconds(5));
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable && sw.Elapsed < TimeSpan.FromSeconds(10))
            {
                await Task.Delay(100);
            }
        }
        Assert.Equal("past the client limit", await cluster.GetAsync(leader, "forwarded"));
        // ... and it took no client's place: the clients' limit is as full as before.
        await AssertRefused(address);
        output.WriteLine($"leader {leader}: 2 client connections (the limit), node {follower} forwarded a write (index {reply.Index})");

        static async Task AssertRefused(string address)
        {
            using var over = GrpcChannel.ForAddress(address);
            var e = await Assert.ThrowsAsync<RpcException>(() =>
                new RaftClient.RaftClientClient(over).GetLeaderAsync(new GetLeaderRequest(), deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync);
            Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        }
    }

    [Fact]
    public async Task A_node_joins_by_asking_a_member_over_peer_TLS_and_one_with_another_CAs_certificate_is_refused_at_once()
    {
        var (cluster, files) = Cluster("ptls-join", extra: ["--quiet"]);
        await using var scope = cluster;
        foreach (var id in cluster.Ids) cluster.Start(id);
        var leader = await cluster.WaitForLeaderAsync();
        var follower = cluster.Ids.First(i => i != leader);
        var port = cluster.NewPort(3);
        await LocalCluster.RetryAsync(() => cluster.Client(leader).AddMemberAsync(
            new AddMemberRequest { Id = 3, Address = "127.0.0.1", Port = port, Learner = true }, deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync);
        string[] Join(string dataDir, string[] tls) => ["3", "--join", $"127.0.0.1:{cluster.Ports[follower]}", "--data-dir", dataDir, "--quiet", .. tls];

        // A certificate of another CA: the member's certificate is not trusted, and waiting will not change that.
        var other = new PeerTlsFiles(Path.Combine(cluster.Dir, "pki-other"), "other CA");
        var (otherCert, otherKey) = other.Node("node-3-other", 3);
        using (var refused = ServerProcess.Start(3, cluster.Dir, Join(cluster.DataDir(3) + "-refused",
            ["--peer-cert-file", otherCert, "--peer-key-file", otherKey, "--peer-ca-file", other.CaPath])))
        {
            var code = await refused.WaitForExit(TimeSpan.FromSeconds(20));
            Assert.True(code == 2, $"exit code {code}\n{refused.Output}");
            Assert.Contains($"cannot join through 127.0.0.1:{cluster.Ports[follower]}: Refused the peer TLS connection to the node at 127.0.0.1:{cluster.Ports[follower]}", refused.Output);
            Assert.Contains("is not issued by --peer-ca-file (CN=other CA)", refused.Output);
        }

        using var joined = ServerProcess.Start(3, cluster.Dir, Join(cluster.DataDir(3), files.Arguments(3)));
        var asked = $"(asked node {follower} at 127.0.0.1:{cluster.Ports[follower]} over peer TLS)";
        Assert.True(await joined.WaitForOutput(asked, LocalCluster.Patience), joined.Output);
        var write = await cluster.SetAsync(leader, "after-join", "yes");
        await cluster.WaitForAppliedAsync(3, write.Index);
        Assert.Equal("yes", await cluster.GetAsync(3, "after-join", stale: true));
        output.WriteLine($"node 3 joined through node {follower} over peer TLS and applied index {write.Index}");
    }

    [Fact]
    public async Task A_plain_node_and_peer_TLS_nodes_refuse_each_other_with_clear_lines_on_both_sides()
    {
        var (cluster, _) = Cluster("ptls-mixed", (files, id) => id == 2 ? [] : files.Arguments(id), extra: ["--quiet"]);
        await using var scope = cluster;
        foreach (var id in cluster.Ids) cluster.Start(id);
        var leader = await cluster.WaitForLeaderAsync(among: [0, 1]);
        int[] tlsNodes = [0, 1];
        // Node 2 (plain) connecting to a TLS node, seen from both sides.
        Assert.True(await AnyLogs(cluster, tlsNodes, "it speaks plain text, and this node requires peer TLS (--peer-cert-file)"), cluster.Outputs());
        Assert.True(await cluster.Process(2).WaitForOutput("requires peer TLS, and this node does not use it (no --peer-cert-file)", LogWait), cluster.Outputs());
        // A TLS node connecting to node 2, seen from both sides.
        Assert.True(await cluster.Process(2).WaitForOutput("it uses peer TLS, and this node does not (no --peer-cert-file)", LogWait), cluster.Outputs());
        Assert.True(await AnyLogs(cluster, tlsNodes, "does not use peer TLS (it answered in plain text)"), cluster.Outputs());
        // The TLS majority serves; node 2 never joins it.
        await cluster.SetAsync(leader, "mixed", "ok");
        Assert.Equal("ok", await cluster.GetAsync(leader == 0 ? 1 : 0, "mixed"));
        Assert.Null(await cluster.GetAsync(2, "mixed", stale: true));
    }

    [Fact]
    public async Task A_node_with_a_certificate_of_another_CA_is_refused_and_refuses_its_peers_with_clear_lines()
    {
        var (cluster, _) = Cluster("ptls-otherca", extra: ["--quiet"]);
        await using var scope = cluster;
        var other = new PeerTlsFiles(Path.Combine(cluster.Dir, "pki-other"), "other CA");
        var (cert, key) = other.Node("node-2-other", 2);
        foreach (var id in new[] { 0, 1 }) cluster.Start(id);
        var p2 = ServerProcess.Start(2, cluster.Dir, ["2", "--config", cluster.ConfigPath, "--quiet", "--peer-cert-file", cert, "--peer-key-file", key, "--peer-ca-file", other.CaPath]);
        try
        {
            var leader = await cluster.WaitForLeaderAsync(among: [0, 1]);
            Assert.True(await AnyLogs(cluster, [0, 1], "Refused a peer TLS connection from 127.0.0.1:"), cluster.Outputs() + "\n--- node 2 ---\n" + p2.Output);
            Assert.True(await AnyLogs(cluster, [0, 1], "(subject CN=node-2-other, issuer CN=other CA, valid until"), cluster.Outputs());
            Assert.True(await AnyLogs(cluster, [0, 1], $"is not issued by --peer-ca-file (CN=peer test CA)"), cluster.Outputs());
            Assert.True(await p2.WaitForOutput("Refused the peer TLS connection to node 0 at 127.0.0.1:", LogWait), p2.Output);
            Assert.True(await p2.WaitForOutput("is not issued by --peer-ca-file (CN=other CA)", LogWait), p2.Output);
            await cluster.SetAsync(leader, "other-ca", "kept out");
            Assert.Null(await cluster.GetAsync(2, "other-ca", stale: true));
        }
        finally
        {
            p2.Dispose();
        }
    }

    [Fact]
    public async Task A_node_refuses_to_start_with_an_expired_certificate_or_one_naming_another_node()
    {
        var (cluster, files) = Cluster("ptls-own", extra: ["--quiet"]);
        await using var scope = cluster;
        var (expired, expiredKey) = files.Node("expired", 0, DateTimeOffset.UtcNow.AddDays(-20), DateTimeOffset.UtcNow.AddDays(-1));
        var p = ServerProcess.Start(0, cluster.Dir, ["0", "--config", cluster.ConfigPath, "--peer-cert-file", expired, "--peer-key-file", expiredKey, "--peer-ca-file", files.CaPath]);
        using (p)
        {
            var code = await p.WaitForExit(LocalCluster.Patience);
            Assert.True(code == 2, $"exit code {code}\n{p.Output}");
            Assert.Contains("--peer-cert-file", p.Output);
            Assert.Contains("is not valid now", p.Output);
        }
        var (wrong, wrongKey) = files.Node("names-1", 1);
        var q = ServerProcess.Start(0, cluster.Dir, ["0", "--config", cluster.ConfigPath, "--peer-cert-file", wrong, "--peer-key-file", wrongKey, "--peer-ca-file", files.CaPath]);
        using (q)
        {
            var code = await q.WaitForExit(LocalCluster.Patience);
            Assert.True(code == 2, $"exit code {code}\n{q.Output}");
            Assert.Contains("names node 1, not this node (0)", q.Output);
        }
    }

    [Fact]
    public async Task Peer_TLS_connections_with_a_wrong_certificate_or_hello_are_refused_and_a_batch_claiming_another_member_is_dropped()
    {
        var (cluster, files) = Cluster("ptls-forged", extra: ["--quiet"]);
        await using var scope = cluster;
        foreach (var id in cluster.Ids) cluster.Start(id);
        var leader = await cluster.WaitForLeaderAsync();
        var followers = cluster.Ids.Where(i => i != leader).ToArray();
        var (certified, target) = (followers[0], followers[1]);
        var port = cluster.Ports[target];
        var other = new PeerTlsFiles(Path.Combine(cluster.Dir, "pki-other"), "other CA");

        // Another CA's certificate: refused in the handshake.
        using (var foreign = other.Make("foreign", certified, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1)))
            await ExpectRefused(foreign, certified, "(subject CN=foreign, issuer CN=other CA", "is not issued by --peer-ca-file");
        // Expired, from the right CA.
        using (var expired = files.Make("expired", certified, DateTimeOffset.UtcNow.AddDays(-10), DateTimeOffset.UtcNow.AddDays(-1)))
            await ExpectRefused(expired, certified, "(subject CN=expired", "is not valid now");
        // Naming one node, saying it is another in the hello.
        using (var names = files.Make("names-certified", certified, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1)))
            await ExpectRefused(names, leader, $"its hello says node {leader}, its certificate names node {certified}");
        // Naming two nodes.
        using (var two = files.Make("names-two", certified, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1), [leader]))
            await ExpectRefused(two, certified, "(subject CN=names-two", $"a node certificate names one node");

        // A valid certificate and hello of one member, then a batch that says it is from the leader,
        // at a much higher term: dropped and logged, and the term is not taken. The real member's own
        // connection, made again at once, replaces this one (newest wins) and may close it before its
        // batch is read: sent again on a new connection until the line appears.
        var term = (await cluster.StatusAsync(target)).Term;
        var dropped = $"it says it is from node {leader}, its TLS connection is node {certified}'s (its certificate names node {certified})";
        using (var good = files.Make("good", certified, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1)))
        {
            var logged = false;
            for (var attempt = 0; attempt < 20 && !logged; attempt++)
            {
                await using var peer = await PeerTlsPeer.ConnectAsync(port, good);
                await peer.SendHelloAsync(certified);
                Assert.Equal(target, (await peer.ReadHelloAsync())?.NodeId);
                var batch = new MessageBatch { From = leader };
                batch.Messages.Add(new RaftMessage { Type = MessageType.Heartbeat, From = leader, To = target, Term = term + 1_000_000, Commit = 1 });
                await peer.SendBatchAsync(batch);
                logged = await cluster.Process(target).WaitForOutput(dropped, TimeSpan.FromMilliseconds(500));
            }
            Assert.True(logged, $"node {target} did not log \"{dropped}\"\n{cluster.Outputs()}");
        }
        var after = await cluster.SetAsync(leader, "after-forgery", "served");
        await cluster.WaitForAppliedAsync(target, after.Index);
        Assert.True((await cluster.StatusAsync(target)).Term < term + 1_000_000, "the forged term was taken");
        Assert.Equal("served", await cluster.GetAsync(target, "after-forgery"));

        async Task ExpectRefused(System.Security.Cryptography.X509Certificates.X509Certificate2 certificate, int hello, params string[] lines)
        {
            try
            {
                await using var peer = await PeerTlsPeer.ConnectAsync(port, certificate);
                await peer.SendHelloAsync(hello);
                Assert.Null(await peer.ReadHelloAsync());
            }
            catch (Exception e) when (e is System.Security.Authentication.AuthenticationException or IOException)
            {
                // refused during the handshake (TLS 1.2), or the refusal's alert came as the hello went out
            }
            foreach (var line in lines)
                Assert.True(await cluster.Process(target).WaitForOutput(line, LogWait), $"node {target} did not log \"{line}\"\n{cluster.Outputs()}");
        }
    }
}
