using RaftServer.Consensus;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>
/// The classic course suite's snapshot scenarios (MIT 6.824 lab 2D) on the simulator, plus
/// lagging and partitioned followers catching up across a compaction and crashes around a
/// snapshot install. Every node snapshots and compacts every few applied entries; every run ends
/// with <see cref="Simulation.CheckFinal"/> (all safety checks, snapshot states included).
/// </summary>
public class SnapshotScenarioTests
{
    private const int ElectionTicks = 10;
    private const int SnapshotEvery = 9;
    private static readonly int[] Seeds = SeedsFromEnvironment();

    /// <summary>RAFTPS_SEED=n: that seed only; RAFTPS_SCENARIO_SEEDS=n: seeds 1..n (a soak); else 1..3.</summary>
    private static int[] SeedsFromEnvironment()
    {
        if (int.TryParse(Environment.GetEnvironmentVariable("RAFTPS_SEED"), out int seed)) return [seed];
        int count = int.TryParse(Environment.GetEnvironmentVariable("RAFTPS_SCENARIO_SEEDS"), out int n) ? n : 3;
        return Enumerable.Range(1, count).ToArray();
    }

    public static string ReplayCommand(string test, int seed) =>
        $"RAFTPS_SEED={seed} dotnet test tests/RaftServer.Tests -c Release --filter FullyQualifiedName~SnapshotScenarioTests.{test}";

    private static void ForEachSeed(string test, Action<int> scenario)
    {
        foreach (int seed in Seeds)
        {
            try { scenario(seed); }
            catch (Exception e)
            {
                throw new Xunit.Sdk.XunitException($"{test} failed with seed {seed}: {e.Message}\nreplay: {ReplayCommand(test, seed)}\n{e}");
            }
        }
    }

    private static SimConfig Reliable(int nodes) => SimConfig.Reliable(nodes) with { SnapshotEvery = SnapshotEvery };

    private static SimConfig Unreliable(int nodes) => SimConfig.Unreliable(nodes) with
    {
        SnapshotEvery = SnapshotEvery,
        SnapshotFailure = 0.2,
        SnapshotTimeoutTicks = 3 * ElectionTicks,
    };

    private static void Expect(Simulation sim, bool condition, string problem)
    {
        if (!condition) sim.Fail(problem);
    }

    private static int AwaitLeader(Simulation sim)
    {
        int leader = -1;
        if (!sim.RunUntil(() => (leader = sim.Leader()) >= 0, 10 * ElectionTicks)) sim.Fail("no leader within 10 election timeouts");
        return leader;
    }

    private static long Commit(Simulation sim, int value, int expected)
    {
        long index = sim.One(Simulation.Command(value % 5, value), expected);
        Expect(sim, index > 0, $"command {value} did not commit on {expected} nodes");
        return index;
    }

    [Fact]
    public void Snapshot_basic() => ForEachSeed(nameof(Snapshot_basic), seed =>
    {
        var sim = new Simulation(seed, Reliable(3));
        for (int i = 1; i <= 4 * SnapshotEvery + 3; i++) Commit(sim, i, 3);
        Expect(sim, sim.SnapshotsTaken >= 3 * 3, $"only {sim.SnapshotsTaken} snapshots taken");
        foreach (var node in sim.Nodes)
            Expect(sim, node.Core!.LogEntryCount <= SnapshotEvery + 2 && node.SnapshotIndex > 2 * SnapshotEvery, $"node {node.Id} did not compact its log");
        Expect(sim, sim.SnapshotsInstalled == 0, "no node lagged, yet a snapshot was installed");
        sim.CheckFinal();
    });

    [Fact]
    public void Snapshot_install() => ForEachSeed(nameof(Snapshot_install), seed => Install(seed, Reliable(3), crash: false));

    [Fact]
    public void Snapshot_install_unreliable() => ForEachSeed(nameof(Snapshot_install_unreliable), seed => Install(seed, Unreliable(3), crash: false));

    [Fact]
    public void Snapshot_install_crash() => ForEachSeed(nameof(Snapshot_install_crash), seed => Install(seed, Reliable(3), crash: true));

    [Fact]
    public void Snapshot_install_unreliable_crash() => ForEachSeed(nameof(Snapshot_install_unreliable_crash), seed => Install(seed, Unreliable(3), crash: true));

    /// <summary>A follower is cut off (or crashed) while the others commit past a compaction, then
    /// returns and must catch up by snapshot; round after round.</summary>
    private static void Install(int seed, SimConfig config, bool crash)
    {
        var sim = new Simulation(seed, config);
        int value = 1;
        Commit(sim, value++, 3);
        for (int round = 0; round < 6; round++)
        {
            int leader = AwaitLeader(sim);
            int victim = (leader + 1 + sim.Random.Next(2)) % 3;
            if (crash) sim.Crash(victim); else sim.Disconnect(victim);
            for (int i = 0; i < SnapshotEvery + 2 + sim.Random.Next(SnapshotEvery); i++) Commit(sim, value++, 2);
            if (crash) sim.Restart(victim); else sim.Connect(victim);
            // The victim's next entry is compacted away on the others: only a snapshot helps.
            Commit(sim, value++, 3);
        }
        Expect(sim, sim.SnapshotsInstalled >= 3, $"only {sim.SnapshotsInstalled} snapshots installed");
        sim.CheckFinal();
    }

    [Fact]
    public void Snapshots_with_all_nodes_crashing() => ForEachSeed(nameof(Snapshots_with_all_nodes_crashing), seed => AllCrash(seed, Reliable(3)));

    [Fact]
    public void Snapshots_with_all_nodes_crashing_unreliable() => ForEachSeed(nameof(Snapshots_with_all_nodes_crashing_unreliable), seed => AllCrash(seed, Unreliable(3)));

    /// <summary>Everyone crashes now and then; restarted nodes load their snapshot and replay only
    /// the log after it. The applied index never goes backwards past a node's snapshot, and what
    /// was committed stays committed.</summary>
    private static void AllCrash(int seed, SimConfig config)
    {
        var sim = new Simulation(seed, config);
        int value = 1;
        long last = 0;
        for (int round = 0; round < 5; round++)
        {
            int count = 1 + sim.Random.Next(SnapshotEvery + 3);
            for (int i = 0; i < count; i++) last = Math.Max(last, Commit(sim, value++, 3));
            var snapshots = sim.Nodes.Select(n => n.SnapshotIndex).ToArray();
            foreach (var node in sim.Nodes) sim.Crash(node.Id);
            foreach (var node in sim.Nodes)
            {
                sim.Restart(node.Id);
                Expect(sim, node.Core!.AppliedIndex >= snapshots[node.Id] && node.AppliedLog.Count >= snapshots[node.Id],
                    $"node {node.Id} restarted at applied {node.Core.AppliedIndex}, below its snapshot {snapshots[node.Id]}");
                Expect(sim, node.SnapshotIndex == snapshots[node.Id], $"node {node.Id} lost its snapshot");
            }
            long index = Commit(sim, value++, 3);
            Expect(sim, index > last, $"a new command got index {index}, not after {last}: committed entries were lost");
            last = index;
        }
        sim.CheckFinal();
    }

    [Fact]
    public void Lagging_and_partitioned_followers_catch_up_across_compactions() =>
        ForEachSeed(nameof(Lagging_and_partitioned_followers_catch_up_across_compactions), seed =>
    {
        // Five nodes, clients reading and writing all along (linearizability checked at the end).
        var sim = new Simulation(seed, Unreliable(5)) { Keys = 3 };
        sim.AddClients(3);
        sim.ClientsActive = true;
        for (int round = 0; round < 4; round++)
        {
            int leader = AwaitLeader(sim);
            // Two followers on the minority side: one partitioned, one merely paused (lagging).
            int a = (leader + 1 + sim.Random.Next(4)) % 5;
            int b = (a + 1) % 5 == leader ? (a + 2) % 5 : (a + 1) % 5;
            sim.Disconnect(a);
            sim.Pause(b, sim.TicksToSteps(3 * ElectionTicks));
            int before = sim.AcknowledgedWrites;
            Expect(sim, sim.RunUntil(() => sim.AcknowledgedWrites >= before + 2 * SnapshotEvery, 60 * ElectionTicks),
                "the majority did not keep committing client writes");
            sim.Connect(a);
            sim.RunTicks(2 * ElectionTicks);
        }
        sim.CheckFinal();
        Expect(sim, sim.SnapshotsInstalled > 0, "no follower caught up by snapshot");
    });

    [Fact]
    public void Crash_and_restart_around_a_snapshot_install() =>
        ForEachSeed(nameof(Crash_and_restart_around_a_snapshot_install), seed =>
    {
        var sim = new Simulation(seed, Reliable(3) with { SnapshotTransferSteps = 40, MaxDelay = 6 });
        int value = 1;
        Commit(sim, value++, 3);
        for (int round = 0; round < 6; round++)
        {
            int leader = AwaitLeader(sim);
            int victim = (leader + 1) % 3;
            sim.Disconnect(victim);
            for (int i = 0; i < SnapshotEvery + 2; i++) Commit(sim, value++, 2);
            int installed = sim.SnapshotsInstalled;
            sim.Connect(victim);
            switch (round % 3)
            {
                case 0:
                    // The victim crashes while the transfer is under way (or just after the
                    // install, or between persisting its Ready and sending), then restarts.
                    sim.RunSteps(sim.Random.Next(1, 20 * sim.Config.StepsPerTick / 10 + 40));
                    sim.CrashAfterPersist = 0.5;
                    sim.RunSteps(sim.Random.Next(1, 30));
                    sim.CrashAfterPersist = 0;
                    sim.Crash(victim);
                    foreach (var node in sim.Nodes)
                        if (!node.Alive) sim.Restart(node.Id); // any node may have crashed after persisting
                    break;
                case 1:
                    // The victim installs the snapshot, then crashes at once and restarts from it.
                    sim.RunUntil(() => sim.SnapshotsInstalled > installed, 10 * ElectionTicks);
                    sim.Crash(victim);
                    sim.Restart(victim);
                    break;
                default:
                    // The leader crashes mid-transfer; the new leader must finish the catch-up.
                    sim.RunSteps(sim.Random.Next(1, 30));
                    sim.Crash(leader);
                    sim.RunTicks(3 * ElectionTicks);
                    sim.Restart(leader);
                    break;
            }
            Commit(sim, value++, 3);
        }
        Expect(sim, sim.SnapshotsInstalled >= 3, $"only {sim.SnapshotsInstalled} snapshots installed");
        sim.CheckFinal();
    });

    [Fact]
    public void Leadership_moves_to_a_node_that_needed_a_snapshot() =>
        ForEachSeed(nameof(Leadership_moves_to_a_node_that_needed_a_snapshot), seed =>
    {
        var sim = new Simulation(seed, Reliable(3));
        int value = 1;
        Commit(sim, value++, 3);
        int leader = AwaitLeader(sim);
        int victim = (leader + 1) % 3;
        sim.Disconnect(victim);
        for (int i = 0; i < 2 * SnapshotEvery; i++) Commit(sim, value++, 2);
        sim.Connect(victim);
        Expect(sim, sim.Nodes[leader].Core!.TransferLeadership(victim), "the transfer did not start");
        Expect(sim, sim.RunUntil(() => sim.Leader() == victim, 10 * ElectionTicks), "leadership did not move to the node that needed a snapshot");
        Expect(sim, sim.SnapshotsInstalled > 0, "the victim did not install a snapshot");
        Commit(sim, value++, 3);
        sim.CheckFinal();
    });
}
