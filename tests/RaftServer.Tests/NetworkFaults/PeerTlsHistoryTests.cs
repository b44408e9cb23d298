using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using Google.Protobuf;
using RaftPS.Protocol;
using RaftServer.Tests.Consensus.Simulation;
using RaftServer.Tests.Integration;
using RaftServer.Transport;
using Xunit.Abstractions;

namespace RaftServer.Tests.NetworkFaults;

/// <summary>
/// A lab cluster with peer TLS (docs/security.md, "Peer TLS") while clients record a history
/// (<see cref="Workload"/>) and, from the lab's client namespace, for <see cref="AttackFor"/> each:
/// a holder of one member's certificate sends batches that claim to come from the leader at a far
/// higher term; certificates of another CA, expired, or naming another node than the hello; plain
/// peers. Each must be refused (said in the node's log) while the cluster keeps taking writes, no
/// forged term is taken, and the whole history must be linearizable with nothing acknowledged lost.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class PeerTlsHistoryTests(ITestOutputHelper output)
{
    private const int Nodes = 3;
    private const int Clients = 4;
    private const int Keys = 4;
    private static readonly TimeSpan AttackFor = TimeSpan.FromSeconds(2);
    private const int MinWritesPerAttack = 5;
    private const long ForgedTermJump = 1_000_000_000;

    [SkippableFact]
    public async Task With_peer_TLS_forged_member_batches_foreign_certificates_and_plain_peers_are_refused_and_the_history_stays_linearizable()
    {
        Skip.If(NetworkLab.Unavailable is not null, NetworkLab.Unavailable);
        var seed = int.TryParse(Environment.GetEnvironmentVariable("RAFTPS_ATTACK_SEED"), out var s) ? s : Random.Shared.Next(1, 1_000_000);
        Log($"seed {seed} (replay: RAFTPS_ATTACK_SEED={seed}); {Nodes} nodes with peer TLS, {Clients} clients, {Keys} keys, each attack {AttackFor.TotalSeconds} s");
        var random = new Random(seed);
        var pki = ServerProcess.TempDir("ptls-history-pki");
        try
        {
            var files = new PeerTlsFiles(pki);
            var other = new PeerTlsFiles(Path.Combine(pki, "other"), "other CA");
            using var cluster = new LabCluster(Nodes, null, allowSuspend: false, nodeArgs: files.Arguments);
            using var attacker = new NamespaceThread(cluster.Lab.ClientNamespace);
            var problems = new List<string>();
            var windows = new List<(string Name, long Start, long End, string Detail)>();
            await cluster.WaitForLeaderAsync();
            foreach (var id in cluster.Ids)
                if (!cluster.Process(id).Output.Contains($"Peer TLS: on (certificate CN=node-{id} naming node {id}", StringComparison.Ordinal))
                    problems.Add($"node {id} does not say that peer TLS is on");

            IReadOnlyList<RecordedOp> history;
            await using (var workload = new Workload(cluster, Clients, Keys, seed))
            {
                await Task.Delay(TimeSpan.FromSeconds(1));
                var attacks = new (string Name, Func<int, int, Task<string>> Run)[]
                {
                    ("a member's certificate, batches claiming the leader", (leader, follower) => ForgedMemberBatches(cluster, attacker, files, leader, follower, problems)),
                    ("certificates of another CA, expired, naming another node", (_, follower) => WrongCertificates(cluster, attacker, files, other, follower, problems)),
                    ("plain-text peers", (leader, _) => PlainPeers(cluster, attacker, leader, problems)),
                };
                foreach (var (name, run) in attacks)
                {
                    var leader = await cluster.WaitForLeaderAsync();
                    var followers = cluster.Ids.Where(i => i != leader).ToList();
                    var follower = followers[random.Next(followers.Count)];
                    var start = Workload.NowUs;
                    var detail = await run(leader, follower);
                    windows.Add((name, start, Workload.NowUs, detail));
                    Log($"{Ms(start)}..{Ms(Workload.NowUs)} {name} (leader {leader}, follower {follower}): {detail}");
                }
                await Task.Delay(TimeSpan.FromSeconds(0.5));
                history = await workload.StopAsync();
            }

            var final = await NetworkFaultTests.FinalReads(cluster, Keys);
            history = [.. history, .. final];
            await NetworkFaultTests.AssertReplicasAgree(cluster, problems);
            foreach (var w in windows)
            {
                var writes = history.Count(o => o.IsWrite && o.Outcome == OpOutcome.Ok && o.Return >= w.Start && o.Return <= w.End);
                Log($"during {w.Name}: {writes} writes acknowledged in {(w.End - w.Start) / 1000} ms");
                if (writes < MinWritesPerAttack)
                    problems.Add($"the cluster took {writes} writes during {w.Name} (at least {MinWritesPerAttack} expected)");
            }
            var terms = await Task.WhenAll(cluster.Ids.Select(async n =>
                (await cluster.Admin(n).StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(2))).Term));
            Log($"terms after the attacks: {string.Join(", ", terms)}");
            if (terms.Any(t => t >= ForgedTermJump))
                problems.Add($"a node took a forged term: terms {string.Join(", ", terms)}");
            foreach (var id in cluster.Ids)
                if (cluster.Process(id).HasExited)
                    problems.Add($"node {id} exited");
            Log(RecordedHistory.Check(history, problems));

            if (problems.Count > 0 || Environment.GetEnvironmentVariable("RAFTPS_NETFAULT_VERBOSE") == "1")
                Log(cluster.Outputs());
            if (problems.Count > 0)
                Assert.Fail($"seed {seed}:\n" + string.Join("\n", problems));
        }
        finally
        {
            try { Directory.Delete(pki, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>
    /// With a valid certificate of the other follower (a stolen key), connections to
    /// <paramref name="follower"/> whose hello matches the certificate and whose batches say they
    /// are from the leader, at a far higher term, with an Append beyond the log: every batch dropped.
    /// </summary>
    private static async Task<string> ForgedMemberBatches(LabCluster cluster, NamespaceThread attacker, PeerTlsFiles files, int leader, int follower, List<string> problems)
    {
        var other = cluster.Ids.First(i => i != leader && i != follower);
        var status = await cluster.Admin(follower).StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(2));
        var forgedTerm = status.Term + ForgedTermJump;
        using var stolen = files.Make($"stolen-{other}", other, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var sw = Stopwatch.StartNew();
        var sent = 0;
        while (sw.Elapsed < AttackFor)
        {
            await using var peer = await PeerTlsPeer.ConnectAsync(await Connect(attacker, follower), stolen);
            await peer.SendHelloAsync(other);
            if ((await peer.ReadHelloAsync())?.NodeId != follower)
            {
                problems.Add($"node {follower} did not answer a hello that matched its certificate");
                break;
            }
            var batch = new MessageBatch { From = leader };
            batch.Messages.Add(new RaftMessage
            {
                Type = MessageType.Append, From = leader, To = follower, Term = forgedTerm, LogTerm = status.Term, Index = status.LastIndex,
                Commit = status.CommitIndex + 1000,
                Entries = { new LogEntry { Index = status.LastIndex + 1, Term = forgedTerm, Kind = EntryKind.Command, Data = ByteString.CopyFromUtf8("forged") } },
            });
            batch.Messages.Add(new RaftMessage { Type = MessageType.Heartbeat, From = leader, To = follower, Term = forgedTerm, Commit = status.CommitIndex + 1000 });
            await peer.SendBatchAsync(batch);
            sent++;
            await Task.Delay(50); // let the node read it before the close
        }
        await ExpectLog(cluster, follower, $"it says it is from node {leader}, its TLS connection is node {other}'s (its certificate names node {other})", problems);
        return $"{sent} connections to node {follower} with node {other}'s certificate, each with a batch claiming node {leader} at term {forgedTerm}";
    }

    /// <summary>Certificates another CA issued, expired ones, and valid ones whose hello names another node: each connection refused.</summary>
    private static async Task<string> WrongCertificates(LabCluster cluster, NamespaceThread attacker, PeerTlsFiles files, PeerTlsFiles other, int follower, List<string> problems)
    {
        var claimed = cluster.Ids.First(i => i != follower);
        var now = DateTimeOffset.UtcNow;
        using var foreign = other.Make("foreign", claimed, now.AddDays(-1), now.AddDays(1));
        using var expired = files.Make("expired", claimed, now.AddDays(-10), now.AddDays(-1));
        using var mismatched = files.Make("mismatched", claimed, now.AddDays(-1), now.AddDays(1));
        var sw = Stopwatch.StartNew();
        var attempts = 0;
        var answered = 0;
        while (sw.Elapsed < AttackFor)
        {
            var (certificate, hello) = (attempts % 3) switch
            {
                0 => (foreign, claimed),
                1 => (expired, claimed),
                _ => (mismatched, 1000 + claimed),
            };
            attempts++;
            var socket = await Connect(attacker, follower);
            try
            {
                await using var peer = await PeerTlsPeer.ConnectAsync(socket, certificate);
                await peer.SendHelloAsync(hello);
                if (await peer.ReadHelloAsync() is not null) answered++;
            }
            catch (Exception e) when (e is System.Security.Authentication.AuthenticationException or IOException)
            {
                // refused in the handshake
            }
            finally
            {
                socket.Dispose();
            }
        }
        if (answered > 0) problems.Add($"node {follower} answered {answered} hellos of wrong certificates");
        await ExpectLog(cluster, follower, "is not issued by --peer-ca-file", problems);
        await ExpectLog(cluster, follower, "is not valid now", problems);
        await ExpectLog(cluster, follower, $"its hello says node {1000 + claimed}, its certificate names node {claimed}", problems);
        return $"{attempts} connections to node {follower}: another CA's, expired, and mismatched certificates, {answered} answered";
    }

    /// <summary>Plain-text peer connections to a peer TLS node: refused with its TLS preface, and said in its log.</summary>
    private static async Task<string> PlainPeers(LabCluster cluster, NamespaceThread attacker, int node, List<string> problems)
    {
        var sw = Stopwatch.StartNew();
        var attempts = 0;
        var tlsAnswers = 0;
        while (sw.Elapsed < AttackFor)
        {
            using var socket = await Connect(attacker, node);
            await socket.SendAsync((byte[])[.. PeerWire.Preface, .. PeerWire.Hello(0, 1000 + node)]);
            var answer = new byte[PeerWire.TlsPreface.Length];
            var got = 0;
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            try
            {
                while (got < answer.Length)
                {
                    var n = await socket.ReceiveAsync(answer.AsMemory(got), SocketFlags.None, timeout.Token);
                    if (n == 0) break;
                    got += n;
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException) { }
            if (got == answer.Length && answer.AsSpan().SequenceEqual(PeerWire.TlsPreface)) tlsAnswers++;
            attempts++;
            await Task.Delay(50);
        }
        if (tlsAnswers != attempts) problems.Add($"node {node} answered {tlsAnswers} of {attempts} plain peers with its TLS preface");
        await ExpectLog(cluster, node, "it speaks plain text, and this node requires peer TLS", problems);
        return $"{attempts} plain peer connections to node {node}, {tlsAnswers} answered with the TLS preface and closed";
    }

    private static async Task<Socket> Connect(NamespaceThread attacker, int node)
    {
        var socket = attacker.Invoke(() => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true });
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await socket.ConnectAsync(NetworkLab.NodeAddress(node), NetworkLab.NodePort, timeout.Token);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static async Task ExpectLog(LabCluster cluster, int node, string text, List<string> problems)
    {
        if (!await cluster.Process(node).WaitForOutput(text, TimeSpan.FromSeconds(3)))
            problems.Add($"node {node} did not log \"{text}\"");
    }

    private void Log(string line) => output.WriteLine(line);

    private static string Ms(long us) => string.Create(CultureInfo.InvariantCulture, $"[{us / 1000,7} ms]");
}
