using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using Google.Protobuf;
using Grpc.Core;
using RaftPS.Protocol;
using RaftServer.Tests.Consensus.Simulation;
using RaftServer.Tests.Integration;
using RaftServer.Transport;
using Xunit.Abstractions;

using static RaftServer.Tests.NetworkFaults.AttackTools;

namespace RaftServer.Tests.NetworkFaults;

/// <summary>
/// A lab cluster with peer TLS (docs/security.md, "Peer TLS") while clients record a history
/// (<see cref="Workload"/>) and, from the lab's client namespace, for <see cref="AttackFor"/> each:
/// a holder of one member's certificate sends batches that claim to come from the leader at a far
/// higher term; certificates of another CA, expired, or naming another node than the hello; plain
/// peers; well-formed forged snapshots uploaded over peer TLS with a member's certificate claiming
/// the leader, with another CA's certificate, and an upload announcing more than --max-snapshot-bytes.
/// Each must be refused (said in the node's log) while the cluster keeps taking writes, no forged
/// term or key is taken, and the whole history must be linearizable with nothing acknowledged lost.
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
    private const string ForgedKey = "forged-by-snapshot";

    [SkippableFact]
    public async Task With_peer_TLS_forged_batches_and_snapshots_foreign_certificates_and_plain_peers_are_refused_and_the_history_stays_linearizable()
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
                    ("forged and oversized snapshots over peer TLS", (leader, follower) => ForgedSnapshots(cluster, attacker, files, other, leader, follower, problems)),
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
            {
                var forged = await cluster.Admin(id).GetAsync(new GetRequest { Key = ForgedKey, Stale = true }, deadline: DateTime.UtcNow.AddSeconds(2));
                if (forged.Found) problems.Add($"node {id} holds the forged snapshot's key {ForgedKey}");
            }
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

    /// <summary>
    /// Snapshot uploads to <paramref name="follower"/> over peer TLS, each a well-formed snapshot file
    /// (one key, <see cref="ForgedKey"/>) far past the cluster's log at a far higher term: with the
    /// other follower's valid certificate (a stolen key) and a header that says it is from the leader;
    /// with that certificate and its own id, announcing more than --max-snapshot-bytes (8 GiB); with a
    /// certificate of another CA. Every upload must be refused, each kind with its line.
    /// </summary>
    private static async Task<string> ForgedSnapshots(LabCluster cluster, NamespaceThread attacker, PeerTlsFiles files, PeerTlsFiles other,
        int leader, int follower, List<string> problems)
    {
        var member = cluster.Ids.First(i => i != leader && i != follower);
        var status = await cluster.Admin(follower).StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(2));
        var clusterId = (await cluster.Admin(follower).ListMembersAsync(new ListMembersRequest(), deadline: DateTime.UtcNow.AddSeconds(2))).ClusterId;
        var configuration = RaftServer.Consensus.Configuration.FromVoters(cluster.Ids);
        var meta = new RaftServer.Consensus.SnapshotMetadata(status.CommitIndex + 1_000_000, status.Term + ForgedTermJump, configuration);
        var file = ForgedSnapshotFile(meta);
        var now = DateTimeOffset.UtcNow;
        using var stolen = files.Make($"snapshot-stolen-{member}", member, now.AddDays(-1), now.AddDays(1));
        using var foreign = other.Make("snapshot-foreign", leader, now.AddDays(-1), now.AddDays(1));
        var sw = Stopwatch.StartNew();
        var outcomes = new Dictionary<string, int>();
        var attempts = 0;
        while (sw.Elapsed < AttackFor)
        {
            var (certificate, from, length, expected) = (attempts % 3) switch
            {
                0 => (stolen, leader, (long)file.Length, "PermissionDenied"),
                1 => (stolen, member, (8L << 30) + 1, "ResourceExhausted"),
                _ => (foreign, leader, (long)file.Length, "transport"),
            };
            attempts++;
            var header = new SnapshotHeader
            {
                From = from, To = follower, Term = meta.Term, SnapshotIndex = meta.Index, SnapshotTerm = meta.Term,
                TotalLength = length, ClusterId = clusterId, Configuration = ByteString.CopyFrom(configuration.Encode()),
            };
            header.Members.AddRange(cluster.Ids);
            var outcome = await UploadAsync(attacker, follower, certificate, header, file);
            outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
            if (outcome != expected && !(expected == "transport" && outcome is "Unavailable" or "Internal"))
                problems.Add($"a forged snapshot upload (certificate {certificate.Subject}, from node {from}, {length} bytes) to node {follower} ended {outcome}, not {expected}");
        }
        await ExpectLog(cluster, follower, $"Refused a snapshot from node {leader}: the snapshot says it is from node {leader}, and its peer TLS certificate names node {member}", problems);
        await ExpectLog(cluster, follower, $"Refused a snapshot from node {member}: the snapshot is {(8L << 30) + 1} bytes, more than this node takes (--max-snapshot-bytes", problems);
        // Refused in the handshake; the line is held back when an earlier attack from this address logged one within the minute.
        await ExpectLog(cluster, follower, "is not issued by --peer-ca-file", problems);
        return $"{attempts} snapshot uploads to node {follower} ({file.Length} bytes, index {meta.Index}, term {meta.Term}): " +
            string.Join(", ", outcomes.OrderBy(o => o.Key).Select(o => $"{o.Value} {o.Key}"));
    }

    /// <summary>A snapshot file as a node writes it, holding only <see cref="ForgedKey"/>.</summary>
    private static byte[] ForgedSnapshotFile(RaftServer.Consensus.SnapshotMetadata meta)
    {
        var dir = ServerProcess.TempDir("forged-snapshot");
        try
        {
            var kv = new RaftServer.StateMachine.KvStore();
            kv.Apply(new RaftServer.Consensus.Entry(meta.Index, meta.Term, RaftServer.Consensus.EntryKind.Command,
                RaftServer.StateMachine.Command.Encode(RaftServer.StateMachine.CommandOp.Set, 1, 7, 1, ForgedKey, "forged"u8)));
            var image = kv.CaptureImage();
            var store = RaftServer.Storage.SnapshotStore.Open(dir, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
            var saved = store.Save(meta, s => RaftServer.StateMachine.KvSnapshotCodec.Write(image, s));
            return File.ReadAllBytes(saved.Path);
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>One InstallSnapshot call over a peer TLS connection from the attacker's namespace; returns how it ended
    /// ("OK", a gRPC status code, or "transport" when the connection itself was refused).</summary>
    private static async Task<string> UploadAsync(NamespaceThread attacker, int node, System.Security.Cryptography.X509Certificates.X509Certificate2 certificate,
        SnapshotHeader header, byte[] file)
    {
        using var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, _) => await PeerTlsPeer.OpenStreamAsync(await Connect(attacker, node), certificate),
        };
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress($"http://{NetworkLab.NodeAddress(node)}:{NetworkLab.NodePort}",
            new Grpc.Net.Client.GrpcChannelOptions { HttpHandler = handler });
        var client = new RaftPeer.RaftPeerClient(channel);
        try
        {
            using var call = client.InstallSnapshot(deadline: DateTime.UtcNow.AddSeconds(5));
            try
            {
                await call.RequestStream.WriteAsync(new SnapshotChunk { Header = header, Offset = 0, Data = ByteString.CopyFrom(file), Done = true });
                await call.RequestStream.CompleteAsync();
            }
            catch (Exception e) when (e is RpcException or InvalidOperationException or IOException)
            {
                // refused while the chunk went out: the answer says how
            }
            await call.ResponseAsync;
            return "OK";
        }
        catch (RpcException e)
        {
            return e.StatusCode is StatusCode.Unavailable or StatusCode.Internal && e.Status.DebugException is not null
                && e.Status.DebugException is System.Net.Http.HttpRequestException or System.Security.Authentication.AuthenticationException or IOException
                ? "transport" : e.StatusCode.ToString();
        }
        catch (Exception e) when (e is System.Security.Authentication.AuthenticationException or IOException or System.Net.Http.HttpRequestException)
        {
            return "transport";
        }
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

    private void Log(string line) => output.WriteLine(line);

    private static string Ms(long us) => string.Create(CultureInfo.InvariantCulture, $"[{us / 1000,7} ms]");
}
