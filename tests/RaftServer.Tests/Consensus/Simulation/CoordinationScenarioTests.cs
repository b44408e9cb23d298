using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.StateMachine;
using Xunit.Abstractions;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>
/// Leases and watches under the faults that make them hard: a leader cut off from its cluster, a
/// leader that dies, watch streams that break and resume on other nodes. Every run ends with
/// <see cref="Simulation.CheckFinal"/> (Raft safety, linearizability of the compare-and-set
/// history, every watch stream against the agreed log, the lease property).
/// </summary>
public class CoordinationScenarioTests(ITestOutputHelper output)
{
    private const int ElectionTicks = 10;
    private static readonly int[] Seeds = SeedsFromEnvironment();

    /// <summary>RAFTPS_SEED=n: that seed only; RAFTPS_SCENARIO_SEEDS=n: seeds 1..n; else 1..5.</summary>
    private static int[] SeedsFromEnvironment()
    {
        if (int.TryParse(Environment.GetEnvironmentVariable("RAFTPS_SEED"), out int seed)) return [seed];
        int count = int.TryParse(Environment.GetEnvironmentVariable("RAFTPS_SCENARIO_SEEDS"), out int n) ? n : 5;
        return Enumerable.Range(1, count).ToArray();
    }

    private static void ForEachSeed(string test, Action<int> scenario)
    {
        foreach (int seed in Seeds)
        {
            try { scenario(seed); }
            catch (Exception e)
            {
                throw new Xunit.Sdk.XunitException($"{test} failed with seed {seed}: {e.Message}\n" +
                    $"replay: RAFTPS_SEED={seed} dotnet test tests/RaftServer.Tests -c Release --filter FullyQualifiedName~CoordinationScenarioTests.{test}\n{e}");
            }
        }
    }

    private static void Expect(Simulation sim, bool condition, string problem)
    {
        if (!condition) sim.Fail(problem);
    }

    private static int AwaitLeader(Simulation sim, Func<int, bool>? where = null)
    {
        int leader = -1;
        if (!sim.RunUntil(() => (leader = sim.Leader()) >= 0 && (where is null || where(leader)), 20 * ElectionTicks))
            sim.Fail("no leader within 20 election timeouts");
        return leader;
    }

    private static long Ms(Simulation sim, int electionTimeouts) => (long)electionTimeouts * ElectionTicks * sim.Config.StepsPerTick;

    /// <summary>Grants a lease at the leader and attaches key <paramref name="key"/> to it.</summary>
    private static long GrantAndAttach(Simulation sim, int leader, long ttlMs, string key)
    {
        var grant = sim.WriteAt(leader, Command.EncodeLeaseGrant(0, 0, 0, ttlMs), 10 * ElectionTicks);
        Expect(sim, grant is { Code: OutcomeCode.Ok }, $"the grant was not committed: {grant}");
        var lease = grant!.Value.Result.Index;
        var put = sim.WriteAt(leader, Command.EncodePut(0, 0, 0, key, "held"u8, default, lease), 10 * ElectionTicks);
        Expect(sim, put is { Code: OutcomeCode.Ok } && put.Value.Result.Status == WriteStatus.Done, $"the key was not attached: {put}");
        return lease;
    }

    private static bool HoldsKey(SimNode node, string key) => node.Driver is { } d && d.State.TryGetItem(key, out _);

    /// <summary>Whether <paramref name="node"/>'s log holds a revoke of <paramref name="lease"/> proposed in <paramref name="term"/>.</summary>
    private static bool HasRevokeInLog(SimNode node, long lease, long term)
    {
        var core = node.Core!;
        for (var i = Math.Max(core.FirstIndex, 1); i <= core.LastIndex; i++)
        {
            var e = core.EntryAt(i);
            if (e is not null && e.Term == term && e.Kind == EntryKind.Command && Command.TryDecode(e.Data, out var c) && c.Op == CommandOp.LeaseRevoke && c.Lease == lease)
                return true;
        }
        return false;
    }

    /// <summary>
    /// The leader is cut off from every other node (without check-quorum, so it goes on believing
    /// it leads). Its lease clock runs out and it proposes the revoke, but that entry cannot
    /// commit without a majority; the other side elects a leader whose clients keep the lease
    /// alive. The key survives on every node, the old leader's revoke is overwritten when it
    /// returns. (A revoke applied locally, a revoke committed without a majority, or a new leader
    /// that trusted the old one's expiry would each delete the key.)
    /// </summary>
    [Fact]
    public void A_partitioned_leader_cannot_revoke_a_lease_the_new_leaders_clients_keep_alive() => ForEachSeed(nameof(A_partitioned_leader_cannot_revoke_a_lease_the_new_leaders_clients_keep_alive), seed =>
    {
        var sim = new Simulation(seed, SimConfig.Reliable(5) with { CheckQuorum = false });
        var oldLeader = AwaitLeader(sim);
        var ttl = Ms(sim, 3);
        var lease = GrantAndAttach(sim, oldLeader, ttl, "held");
        var oldTerm = sim.Nodes[oldLeader].Core!.Term;

        sim.Disconnect(oldLeader);
        var newLeader = AwaitLeader(sim, l => l != oldLeader);
        var acknowledged = 0;
        // The client keeps the lease alive through whichever node leads the majority.
        void KeepAlive(long steps)
        {
            var deadline = sim.Now + steps;
            while (sim.Now < deadline)
            {
                var leader = sim.Leader();
                if (leader >= 0 && leader != oldLeader && sim.KeepAliveAt(leader, lease, ElectionTicks) is { Code: OutcomeCode.Ok, Found: true })
                    acknowledged++;
                sim.RunSteps(ttl / 4);
            }
        }
        KeepAlive(5 * ttl);

        var old = sim.Nodes[oldLeader];
        Expect(sim, old.Core!.Role == Role.Leader && old.Core.Term == oldTerm, "the cut-off leader stepped down: the scenario did not happen");
        Expect(sim, HasRevokeInLog(old, lease, oldTerm), "the cut-off leader never proposed the revoke: the scenario did not happen");
        Expect(sim, acknowledged >= 10, $"only {acknowledged} keep-alives were acknowledged by the new leader {newLeader}");
        foreach (var node in sim.Nodes)
            Expect(sim, HoldsKey(node, "held"), $"node {node.Id} lost the key its client kept alive");
        Expect(sim, sim.ExpiryOf(lease) is null, "the lease was revoked although its client kept it alive");

        sim.Connect(oldLeader);
        KeepAlive(5 * ElectionTicks * sim.Config.StepsPerTick);
        Expect(sim, !HasRevokeInLog(sim.Nodes[oldLeader], lease, oldTerm), "the old leader's revoke survived its return");
        Expect(sim, sim.ExpiryOf(lease) is null, "the lease was revoked although its client kept it alive");
        foreach (var node in sim.Nodes)
            Expect(sim, HoldsKey(node, "held"), $"node {node.Id} lost the key after the old leader returned");
        sim.CheckFinal();
    });

    /// <summary>
    /// A client that can reach only the cut-off leader: that leader cannot confirm its leadership,
    /// so it acknowledges none of the keep-alives; the majority's leader expires the lease a whole
    /// ttl after it took over, and deletes the key; the client was never told the lease lived that long.
    /// </summary>
    [Fact]
    public void A_cut_off_leader_acknowledges_no_keep_alive_and_the_lease_expires_on_the_other_side() => ForEachSeed(nameof(A_cut_off_leader_acknowledges_no_keep_alive_and_the_lease_expires_on_the_other_side), seed =>
    {
        var sim = new Simulation(seed, SimConfig.Reliable(3) with { CheckQuorum = false });
        var oldLeader = AwaitLeader(sim);
        var ttl = Ms(sim, 3);
        var lease = GrantAndAttach(sim, oldLeader, ttl, "held");
        var lastAcknowledged = sim.Now;
        Expect(sim, sim.KeepAliveAt(oldLeader, lease, ElectionTicks) is { Code: OutcomeCode.Ok, Found: true }, "the keep-alive before the cut failed");

        sim.Disconnect(oldLeader);
        var cutAt = sim.Now;
        while (sim.Now < cutAt + 3 * ttl)
        {
            var answer = sim.KeepAliveAt(oldLeader, lease, 2 * ElectionTicks);
            Expect(sim, answer is not { Code: OutcomeCode.Ok, Found: true }, $"the cut-off leader acknowledged a keep-alive at step {sim.Now}");
        }
        var expiry = sim.ExpiryOf(lease);
        Expect(sim, expiry is not null, "the majority never expired the lease its client stopped renewing");
        Expect(sim, expiry!.Value.AppliedAt >= lastAcknowledged + ttl, $"revoked at {expiry.Value.AppliedAt}, before {lastAcknowledged} + ttl {ttl}");
        var majority = sim.Nodes.Where(n => n.Id != oldLeader).ToList();
        Expect(sim, majority.All(n => !HoldsKey(n, "held")), "the expired lease's key survived on the majority");
        sim.Connect(oldLeader);
        sim.CheckFinal();
    });

    /// <summary>
    /// The leader dies right after a keep-alive. The new leader gives the lease a whole ttl from
    /// the moment it has applied an entry of its term (it never trusts the old leader's clock), so
    /// the lease outlives the client's last acknowledged keep-alive by at least a ttl, and then
    /// expires (nobody renews it).
    /// </summary>
    [Fact]
    public void A_new_leader_gives_every_lease_a_whole_ttl_before_it_expires_it() => ForEachSeed(nameof(A_new_leader_gives_every_lease_a_whole_ttl_before_it_expires_it), seed =>
    {
        var sim = new Simulation(seed, SimConfig.Reliable(3) with { HintOnCrash = true });
        var oldLeader = AwaitLeader(sim);
        var ttl = Ms(sim, 4);
        var lease = GrantAndAttach(sim, oldLeader, ttl, "held");
        sim.RunSteps(ttl / 2);
        var sent = sim.Now;
        Expect(sim, sim.KeepAliveAt(oldLeader, lease, ElectionTicks) is { Code: OutcomeCode.Ok, Found: true }, "the keep-alive failed");

        sim.Crash(oldLeader);
        var newLeader = AwaitLeader(sim, l => l != oldLeader);
        Expect(sim, sim.RunUntil(() => sim.Nodes[newLeader].Driver!.Leases.Active, 10 * ElectionTicks), "the new leader's lease clock never started");
        var promotedAt = sim.Now;
        Expect(sim, sim.RunUntil(() => sim.ExpiryOf(lease) is not null, 10 * (int)(ttl / sim.Config.StepsPerTick)), "the abandoned lease never expired");
        var revokedAt = sim.ExpiryOf(lease)!.Value.AppliedAt;
        output.WriteLine($"seed {seed}: keep-alive sent at {sent}, new leader's clock from {promotedAt}, revoked at {revokedAt} (ttl {ttl})");
        Expect(sim, revokedAt >= promotedAt + ttl, $"revoked at {revokedAt}, less than a ttl after the new leader took over at {promotedAt}");
        Expect(sim, revokedAt >= sent + ttl, $"revoked at {revokedAt}, less than a ttl after the last keep-alive was sent at {sent}");
        sim.Restart(oldLeader);
        sim.CheckFinal();
    });

    /// <summary>
    /// The watch property on its own: many watchers, a small window on some seeds, leaders killed
    /// and restarted and cut off, lagging nodes catching up by snapshot. Every watcher's stream,
    /// resumed on any node from the last revision it saw + 1, is the agreed log's changes of its
    /// keys: in order, gap-free, without a duplicate (checked by CheckFinal).
    /// </summary>
    [Fact]
    public void Watch_streams_are_gap_free_and_ordered_across_leader_changes_and_restarts()
    {
        // RAFTPS_SEED=n replays one schedule; RAFTPS_SCENARIO_SEEDS=n runs seeds 1..n (default 100).
        var (first, count) = int.TryParse(Environment.GetEnvironmentVariable("RAFTPS_SEED"), out int one)
            ? (one, 1)
            : (1, int.TryParse(Environment.GetEnvironmentVariable("RAFTPS_SCENARIO_SEEDS"), out int n) ? n : 100);
        long events = 0, connections = 0, restarts = 0, elections = 0, installs = 0;
        for (var seed = first; seed < first + count; seed++)
        {
            var sim = WatchSchedule(seed);
            events += sim.Watchers.Sum(w => w.Seen.Count);
            connections += sim.Watchers.Sum(w => w.Reconnects);
            restarts += sim.Watchers.Sum(w => w.Compactions);
            elections += sim.ElectionsWon;
            installs += sim.SnapshotsInstalled;
        }
        output.WriteLine($"{count} schedules: watchers received {events} events over {connections} connections, {restarts} restarts after compaction; {elections} elections, {installs} snapshots installed");
        if (count >= 20)
        {
            Assert.True(connections > 10 * count, "the watchers hardly ever resumed");
            Assert.True(elections > 3 * count, "the leader hardly ever changed");
            Assert.True(restarts > 0, "no watcher ever found its revisions compacted on every node");
        }
    }

    private static Simulation WatchSchedule(int seed)
    {
        var random = new Random(seed);
        var config = SimConfig.Reliable(3 + 2 * random.Next(2)) with
        {
            HintOnCrash = true,
            SnapshotEvery = random.Next(2) == 0 ? 0 : 5 + random.Next(20),
            WatchWindow = random.Next(3) == 0 ? 8 + random.Next(24) : 4096,
        };
        var sim = new Simulation(seed, config, random.Next()) { Keys = 3 };
        try
        {
            sim.AddClients(3);
            sim.AddWatchers(6);
            sim.AddLeaseClients(1, ttlMs: 3 * config.ElectionTicks * config.StepsPerTick);
            sim.ClientsActive = true;
            for (var phase = 0; phase < 8; phase++)
            {
                var leader = sim.Leader();
                switch (random.Next(4))
                {
                    case 0 when leader >= 0:
                        sim.Crash(leader);
                        break;
                    case 1 when leader >= 0:
                        sim.Disconnect(leader);
                        break;
                    case 2:
                        foreach (var node in sim.Nodes)
                            if (!node.Alive) sim.Restart(node.Id);
                        break;
                    default:
                        sim.ConnectAll();
                        break;
                }
                sim.RunTicks(10 + random.Next(30));
            }
            sim.CheckFinal();
            return sim;
        }
        catch (Exception e)
        {
            throw new Xunit.Sdk.XunitException($"watch schedule {seed} failed: {e.Message}\n" +
                $"replay: RAFTPS_SEED={seed} dotnet test tests/RaftServer.Tests -c Release --filter FullyQualifiedName~CoordinationScenarioTests.Watch_streams_are_gap_free_and_ordered_across_leader_changes_and_restarts\n{e}");
        }
    }
}
