using System.Buffers.Binary;
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
/// Attacks on a running lab cluster (<see cref="LabCluster"/>, started without --allow-suspend)
/// while clients record a history (<see cref="Workload"/>): forged peer frames, a flood of idle
/// connections, 64 MiB client and peer messages, a node of another cluster, and Suspend calls, one
/// after another for <see cref="AttackFor"/> each, from the lab's client namespace. Each must be
/// refused (the node says so in its log, or the call fails with the right status) while the cluster
/// keeps taking writes, and the whole history must be linearizable with no acknowledged write lost.
/// docs/testing.md, "Network faults"; docs/security.md.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class AttackHistoryTests(ITestOutputHelper output)
{
    private const int Nodes = 3;
    private const int Clients = 4;
    private const int Keys = 4;
    private static readonly TimeSpan AttackFor = TimeSpan.FromSeconds(2);
    /// <summary>Acknowledged writes each attack's window must hold at least (hundreds is usual; a starved machine still does tens).</summary>
    private const int MinWritesPerAttack = 5;
    /// <summary>The term the forged frames claim is at least this far above the real one: a node that took one would show it.</summary>
    private const long ForgedTermJump = 1_000_000_000;
    private const int IdleConnections = 10_000;
    private const int HugeBytes = 64 << 20;

    private sealed record AttackWindow(string Name, long Start, long End, string Detail);

    [SkippableFact]
    public async Task Forged_frames_idle_connections_huge_messages_a_foreign_cluster_and_suspend_leave_the_cluster_serving_and_the_history_linearizable()
    {
        Skip.If(NetworkLab.Unavailable is not null, NetworkLab.Unavailable);
        var seed = int.TryParse(Environment.GetEnvironmentVariable("RAFTPS_ATTACK_SEED"), out var s) ? s : Random.Shared.Next(1, 1_000_000);
        Log($"seed {seed} (replay: RAFTPS_ATTACK_SEED={seed}); {Nodes} nodes, {Clients} clients, {Keys} keys, each attack {AttackFor.TotalSeconds} s");
        var random = new Random(seed);

        using var cluster = new LabCluster(Nodes, environment: null, allowSuspend: false);
        using var attacker = new NamespaceThread(cluster.Lab.ClientNamespace);
        var problems = new List<string>();
        var windows = new List<AttackWindow>();
        await cluster.WaitForLeaderAsync();

        IReadOnlyList<RecordedOp> history;
        await using (var workload = new Workload(cluster, Clients, Keys, seed))
        {
            await Task.Delay(TimeSpan.FromSeconds(1)); // some history before the first attack
            var attacks = new (string Name, Func<int, int, Task<string>> Run)[]
            {
                ("forged peer frames", (leader, follower) => ForgedFrames(cluster, attacker, leader, follower, problems)),
                ("idle connection flood", (leader, _) => IdleFlood(attacker, leader)),
                ("64 MiB messages", (leader, follower) => HugeMessages(cluster, attacker, leader, follower, problems)),
                ("node of another cluster", (leader, follower) => ForeignCluster(cluster, attacker, leader, problems)),
                ("Suspend without --allow-suspend", (leader, follower) => SuspendDenied(cluster, leader, follower, problems)),
            };
            foreach (var (name, run) in attacks)
            {
                var leader = await cluster.WaitForLeaderAsync();
                var followers = cluster.Ids.Where(i => i != leader).ToList();
                var follower = followers[random.Next(followers.Count)];
                var start = Workload.NowUs;
                var detail = await run(leader, follower);
                var window = new AttackWindow(name, start, Workload.NowUs, detail);
                windows.Add(window);
                Log($"{Ms(window.Start)}..{Ms(window.End)} {name} (leader {leader}, follower {follower}): {detail}");
            }
            await Task.Delay(TimeSpan.FromSeconds(0.5)); // some history after the last attack
            history = await workload.StopAsync();
        }

        var final = await NetworkFaultTests.FinalReads(cluster, Keys);
        history = [.. history, .. final];
        await NetworkFaultTests.AssertReplicasAgree(cluster, problems);

        foreach (var w in windows)
        {
            var writes = history.Count(o => o.IsWrite && o.Outcome == OpOutcome.Ok && o.Return >= w.Start && o.Return <= w.End);
            var reads = history.Count(o => !o.IsWrite && o.Outcome == OpOutcome.Ok && o.Client >= 0 && o.Return >= w.Start && o.Return <= w.End);
            Log($"during {w.Name}: {writes} writes and {reads} reads acknowledged in {(w.End - w.Start) / 1000} ms");
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

    /// <summary>
    /// To <paramref name="follower"/>: a connection whose hello names the other follower (cluster id
    /// 0, "not known yet", which every node accepts) and then sends an Append and a heartbeat that
    /// say they come from the leader at a far higher term with a commit index beyond the log; and a
    /// connection that opens with the old preface. The first must be dropped (the batch's from is not
    /// the connection's), the second closed; both said in the follower's log.
    /// </summary>
    private async Task<string> ForgedFrames(LabCluster cluster, NamespaceThread attacker, int leader, int follower, List<string> problems)
    {
        var other = cluster.Ids.First(i => i != leader && i != follower);
        var status = await cluster.Admin(follower).StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(2));
        var forgedTerm = status.Term + ForgedTermJump;
        var sw = Stopwatch.StartNew();
        var sent = 0;
        ulong clusterId = 0;
        while (sw.Elapsed < AttackFor)
        {
            using (var forged = await Connect(attacker, follower))
            {
                await forged.SendAsync(Concat(PeerWire.Preface, PeerWire.Hello(ClusterIdentityUnknown, other)));
                clusterId = await ReadHelloAnswer(forged);
                var commit = status.CommitIndex + 1000;
                var batch = new MessageBatch { From = leader };
                batch.Messages.Add(new RaftMessage
                {
                    Type = MessageType.Append, From = leader, To = follower, Term = forgedTerm, LogTerm = status.Term, Index = status.LastIndex,
                    Commit = commit,
                    Entries = { new LogEntry { Index = status.LastIndex + 1, Term = forgedTerm, Kind = EntryKind.Command, Data = ByteString.CopyFromUtf8("forged") } },
                });
                batch.Messages.Add(new RaftMessage { Type = MessageType.Heartbeat, From = leader, To = follower, Term = forgedTerm, Commit = commit });
                await forged.SendAsync(Frame(batch));
                sent++;
                await Task.Delay(50); // let the node read it before the close
            }
            using (var old = await Connect(attacker, follower))
                await old.SendAsync(Concat(PeerWire.PrefaceVersion1, PeerWire.Hello(clusterId, other)));
            await Task.Delay(50);
        }
        await ExpectLog(cluster, follower, $"it says it is from node {leader}, its connection is node {other}'s", problems);
        await ExpectLog(cluster, follower, "it speaks the peer protocol of an older RaftPS", problems);
        return $"{sent} forged batches (as node {leader} over node {other}'s hello, term {forgedTerm}) and {sent} old-preface connections to node {follower}; cluster id {clusterId:x16}";
    }

    /// <summary><see cref="IdleConnections"/> TCP connections to <paramref name="node"/> that never send a byte, held for the attack's time.</summary>
    private static async Task<string> IdleFlood(NamespaceThread attacker, int node)
    {
        var sw = Stopwatch.StartNew();
        var sockets = new List<Socket>();
        var failed = 0;
        try
        {
            for (var i = 0; i < IdleConnections; i += 100)
            {
                var batch = await Task.WhenAll(Enumerable.Range(0, Math.Min(100, IdleConnections - i)).Select(async _ =>
                {
                    try { return await Connect(attacker, node); }
                    catch (SocketException) { return null; }
                }));
                sockets.AddRange(batch.OfType<Socket>());
                failed += batch.Count(b => b is null);
            }
            var opened = sw.ElapsedMilliseconds;
            var rest = AttackFor - sw.Elapsed;
            if (rest > TimeSpan.Zero) await Task.Delay(rest);
            // The node keeps at most PeerSortingListener.MaxPending waiting: it closed the oldest of the rest.
            var closedByNode = sockets.Count(IsClosedByPeer);
            return $"{sockets.Count} connections opened to node {node} in {opened} ms ({failed} failed); {closedByNode} closed by the node by the end";
        }
        finally
        {
            foreach (var socket in sockets) socket.Dispose();
        }
    }

    /// <summary>
    /// A Set of a 64 MiB value to the leader and to a follower (the client's send limit is off;
    /// the node must refuse it RESOURCE_EXHAUSTED), and a peer frame announcing and carrying
    /// 64 MiB of bytes that are no message batch (the follower must close that connection).
    /// </summary>
    private async Task<string> HugeMessages(LabCluster cluster, NamespaceThread attacker, int leader, int follower, List<string> problems)
    {
        var huge = ByteString.CopyFrom(new byte[HugeBytes]);
        var codes = new Dictionary<StatusCode, int>();
        var sw = Stopwatch.StartNew();
        var calls = 0;
        using (var toLeader = cluster.Channel(leader))
        using (var toFollower = cluster.Channel(follower))
        {
            while (sw.Elapsed < AttackFor || calls < 2)
            {
                var client = new RaftClient.RaftClientClient(calls % 2 == 0 ? toLeader : toFollower);
                StatusCode code;
                try
                {
                    await client.SetAsync(new SetRequest { Key = "attack/huge", Value = huge }, deadline: DateTime.UtcNow.AddSeconds(10));
                    code = StatusCode.OK;
                }
                catch (RpcException e)
                {
                    code = e.StatusCode;
                }
                codes[code] = codes.GetValueOrDefault(code) + 1;
                calls++;
            }
        }
        foreach (var (code, count) in codes)
            if (code != StatusCode.ResourceExhausted)
                problems.Add($"{count} of {calls} Set calls of a {HugeBytes >> 20} MiB value ended {code}, not ResourceExhausted");

        // A 64 MiB peer frame (the largest length a frame may announce) of zeros: not a message batch.
        // Its hello names no member: a member's own connection, made again, would replace this one.
        var stranger = 1000 + follower;
        var peerFrameClosed = false;
        using (var peer = await Connect(attacker, follower))
        {
            await peer.SendAsync(Concat(PeerWire.Preface, PeerWire.Hello(ClusterIdentityUnknown, stranger)));
            await ReadHelloAnswer(peer);
            var header = new byte[PeerWire.HeaderBytes];
            BinaryPrimitives.WriteInt32LittleEndian(header, PeerWire.MaxFrameBytes);
            try
            {
                await peer.SendAsync(header);
                var chunk = new byte[1 << 20];
                for (var sentBytes = 0; sentBytes < PeerWire.MaxFrameBytes; sentBytes += chunk.Length) await peer.SendAsync(chunk);
                peerFrameClosed = await WaitClosedByPeer(peer, TimeSpan.FromSeconds(5));
            }
            catch (SocketException)
            {
                peerFrameClosed = true; // reset while sending: closed
            }
        }
        if (!peerFrameClosed) problems.Add($"node {follower} kept a connection open after a {PeerWire.MaxFrameBytes >> 20} MiB frame that is no message batch");
        await ExpectLog(cluster, follower, "a frame that is not a message batch", problems);
        return $"{calls} Set calls of {HugeBytes >> 20} MiB to nodes {leader} and {follower}: {string.Join(", ", codes.Select(c => $"{c.Value} {c.Key}"))}; " +
            $"a {PeerWire.MaxFrameBytes >> 20} MiB peer frame to node {follower}: {(peerFrameClosed ? "connection closed" : "connection left open")}";
    }

    /// <summary>
    /// Connections to every node whose hello says another cluster's id (as each member id in turn,
    /// the leader's included), each followed by a vote request and a TimeoutNow at a far higher term:
    /// each must be refused with a line naming both cluster ids.
    /// </summary>
    private async Task<string> ForeignCluster(LabCluster cluster, NamespaceThread attacker, int leader, List<string> problems)
    {
        ulong ours;
        using (var probe = await Connect(attacker, leader))
        {
            await probe.SendAsync(Concat(PeerWire.Preface, PeerWire.Hello(ClusterIdentityUnknown, cluster.Ids.First(i => i != leader))));
            ours = await ReadHelloAnswer(probe);
        }
        var theirs = ours ^ 0x5A5A_5A5A_0000_0001UL;
        var status = await cluster.Admin(leader).StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(2));
        var sw = Stopwatch.StartNew();
        var attempts = 0;
        var answered = 0;
        while (sw.Elapsed < AttackFor)
        {
            foreach (var target in cluster.Ids)
            {
                var claimed = cluster.Ids.Where(i => i != target).ElementAt(attempts % (cluster.Size - 1));
                using var socket = await Connect(attacker, target);
                await socket.SendAsync(Concat(PeerWire.Preface, PeerWire.Hello(theirs, claimed)));
                var batch = new MessageBatch { From = claimed };
                batch.Messages.Add(new RaftMessage
                {
                    Type = MessageType.Vote, From = claimed, To = target, Term = status.Term + ForgedTermJump, LogTerm = long.MaxValue / 2, Index = long.MaxValue / 2,
                });
                batch.Messages.Add(new RaftMessage { Type = MessageType.TimeoutNow, From = claimed, To = target, Term = status.Term + ForgedTermJump });
                try
                {
                    await socket.SendAsync(Frame(batch));
                    // The node answers with its own hello (saying which cluster it is) and closes.
                    if (await ReadHelloAnswer(socket) == ours) answered++;
                }
                catch (Exception e) when (e is SocketException or IOException) { }
                attempts++;
            }
            await Task.Delay(50);
        }
        foreach (var id in cluster.Ids)
            await ExpectLog(cluster, id, $"it belongs to cluster {theirs:x16}, this node to cluster {ours:x16}", problems);
        return $"{attempts} connections as cluster {theirs:x16} (ours {ours:x16}) to every node; {answered} answers named our cluster";
    }

    /// <summary>Suspend calls to the leader and a follower of a cluster started without --allow-suspend: each PERMISSION_DENIED.</summary>
    private static async Task<string> SuspendDenied(LabCluster cluster, int leader, int follower, List<string> problems)
    {
        var sw = Stopwatch.StartNew();
        var codes = new Dictionary<StatusCode, int>();
        var calls = 0;
        while (sw.Elapsed < AttackFor)
        {
            var node = calls % 2 == 0 ? leader : follower;
            StatusCode code;
            try
            {
                await cluster.Admin(node).SuspendAsync(new SuspendRequest { Seconds = 60 }, deadline: DateTime.UtcNow.AddSeconds(2));
                code = StatusCode.OK;
            }
            catch (RpcException e)
            {
                code = e.StatusCode;
            }
            codes[code] = codes.GetValueOrDefault(code) + 1;
            calls++;
            await Task.Delay(20);
        }
        foreach (var (code, count) in codes)
            if (code != StatusCode.PermissionDenied)
                problems.Add($"{count} of {calls} Suspend calls ended {code}, not PermissionDenied");
        return $"{calls} Suspend calls to nodes {leader} and {follower}: {string.Join(", ", codes.Select(c => $"{c.Value} {c.Key}"))}";
    }

    private const ulong ClusterIdentityUnknown = 0;

    /// <summary>A TCP connection to <paramref name="node"/>'s port from the attacker's namespace.</summary>
    /// <summary>Reads the node's hello answer; its cluster id. Throws <see cref="IOException"/> when the node closed without one.</summary>
    private static async Task<ulong> ReadHelloAnswer(Socket socket)
    {
        var header = await ReadExactly(socket, PeerWire.HeaderBytes);
        var body = await ReadExactly(socket, PeerWire.HelloLength(header));
        return PeerWire.ParseHello(body).ClusterId;
    }

    private static async Task<byte[]> ReadExactly(Socket socket, int count)
    {
        var buffer = new byte[count];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        for (var got = 0; got < count;)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None, timeout.Token);
            if (n == 0) throw new IOException($"the node closed the connection after {got} of {count} bytes");
            got += n;
        }
        return buffer;
    }

    private static bool IsClosedByPeer(Socket socket)
    {
        try
        {
            return socket.Poll(0, SelectMode.SelectRead) && socket.Available == 0;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return true;
        }
    }

    private static async Task<bool> WaitClosedByPeer(Socket socket, TimeSpan patience)
    {
        var sw = Stopwatch.StartNew();
        var drain = new byte[4096];
        while (sw.Elapsed < patience)
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
                if (await socket.ReceiveAsync(drain, SocketFlags.None, timeout.Token) == 0) return true;
            }
            catch (OperationCanceledException) { }
            catch (SocketException) { return true; }
        }
        return false;
    }

    private static byte[] Frame(MessageBatch batch)
    {
        var buffer = Array.Empty<byte>();
        var length = PeerWire.Write(batch, ref buffer);
        return buffer[..length];
    }

    private static byte[] Concat(ReadOnlySpan<byte> first, byte[] second) => [.. first, .. second];

    private void Log(string line) => output.WriteLine(line);

    private static string Ms(long us) => string.Create(CultureInfo.InvariantCulture, $"[{us / 1000,7} ms]");
}
