using RaftServer.Consensus;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>
/// The scenarios of the classic Raft course test suite (MIT 6.824 labs 2A-2C), ported to the
/// deterministic simulator. Each runs on a few seeds; a failure names its seed and the command
/// that replays it. Every run ends with <see cref="Simulation.CheckFinal"/>.
/// </summary>
public class CourseScenarioTests
{
    private const int ElectionTicks = 10;
    private static readonly int[] Seeds = SeedsFromEnvironment();

    private static int[] SeedsFromEnvironment() =>
        int.TryParse(Environment.GetEnvironmentVariable("RAFTPS_SEED"), out int seed) ? [seed] : [1, 2, 3, 4, 5];

    public static string ReplayCommand(string test, int seed) =>
        $"RAFTPS_SEED={seed} dotnet test tests/RaftServer.Tests -c Release --filter FullyQualifiedName~CourseScenarioTests.{test}";

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

    private static int AwaitLeader(Simulation sim, Func<int, bool>? among = null)
    {
        int leader = -1;
        bool found = sim.RunUntil(() =>
        {
            leader = sim.Leader();
            return leader >= 0 && (among is null || among(leader));
        }, 10 * ElectionTicks);
        if (!found) sim.Fail("no leader within 10 election timeouts");
        return leader;
    }

    private static void Expect(Simulation sim, bool condition, string problem)
    {
        if (!condition) sim.Fail(problem);
    }

    [Fact]
    public void Initial_election() => ForEachSeed(nameof(Initial_election), seed =>
    {
        var sim = new Simulation(seed, SimConfig.Reliable(3));
        int leader = AwaitLeader(sim);
        long term = sim.Nodes[leader].Core!.Term;
        // With no failures the leader and term stay put.
        sim.RunTicks(5 * ElectionTicks);
        Expect(sim, sim.Leader() == leader && sim.Nodes[leader].Core!.Term == term, "leadership changed without a failure");
        foreach (var node in sim.Nodes)
            Expect(sim, node.Core!.LeaderId == leader && node.Core.Term == term, $"node {node.Id} does not follow {leader} in term {term}");
        sim.CheckFinal();
    });

    [Fact]
    public void Re_election() => ForEachSeed(nameof(Re_election), seed =>
    {
        var sim = new Simulation(seed, SimConfig.Reliable(3));
        int leader1 = AwaitLeader(sim);

        // The leader goes: a new one is elected among the others.
        sim.Disconnect(leader1);
        int leader2 = AwaitLeader(sim, l => l != leader1);

        // The old leader returns: it must not disrupt the new one.
        sim.Connect(leader1);
        sim.RunTicks(3 * ElectionTicks);
        Expect(sim, sim.Leader() == leader2, "the returning old leader disrupted the new leader");

        // No quorum: no leader.
        int other = (leader2 + 1) % 3;
        sim.Disconnect(leader2);
        sim.Disconnect(other);
        sim.RunTicks(4 * ElectionTicks);
        Expect(sim, sim.Nodes.All(n => n.Core!.Role != Role.Leader), "a leader without a quorum");

        // A quorum again: a leader.
        sim.Connect(other);
        AwaitLeader(sim, l => l != leader2);
        sim.CheckFinal();
    });

    [Fact]
    public void Many_elections() => ForEachSeed(nameof(Many_elections), seed =>
    {
        var sim = new Simulation(seed, SimConfig.Reliable(7));
        AwaitLeader(sim);
        for (int round = 0; round < 10; round++)
        {
            var cut = new HashSet<int>();
            while (cut.Count < 3) cut.Add(sim.Random.Next(7));
            foreach (int id in cut) sim.Disconnect(id);
            AwaitLeader(sim, l => !cut.Contains(l));
            foreach (int id in cut) sim.Connect(id);
        }
        sim.CheckFinal();
    });

    [Fact]
    public void No_commit_without_a_quorum() => ForEachSeed(nameof(No_commit_without_a_quorum), seed =>
    {
        var sim = new Simulation(seed, SimConfig.Reliable(5));
        Expect(sim, sim.One(Simulation.Command(1, 10), 5) > 0, "first command did not commit");

        int leader = AwaitLeader(sim);
        var followers = Enumerable.Range(0, 5).Where(i => i != leader).Take(3).ToArray();
        foreach (int id in followers) sim.Disconnect(id);

        var result = sim.Nodes[leader].Core!.Propose(Simulation.Command(1, 20));
        Expect(sim, result.Outcome == ProposeOutcome.Accepted, "leader refused a proposal");
        sim.RunTicks(2 * ElectionTicks);
        Expect(sim, sim.Nodes.All(n => n.Core!.CommitIndex < result.Index), "committed without a quorum");

        foreach (int id in followers) sim.Connect(id);
        Expect(sim, sim.One(Simulation.Command(1, 30), 5) > 0, "no commit after the quorum returned");
        sim.CheckFinal();
    });

    [Fact]
    public void Partitioned_leader_rejoins() => ForEachSeed(nameof(Partitioned_leader_rejoins), seed =>
    {
        var sim = new Simulation(seed, SimConfig.Reliable(3));
        Expect(sim, sim.One(Simulation.Command(1, 101), 3) > 0, "101 did not commit");

        // The leader is cut off and takes writes it can never commit.
        int leader1 = AwaitLeader(sim);
        sim.Disconnect(leader1);
        for (int v = 102; v <= 104; v++) sim.Nodes[leader1].Core!.Propose(Simulation.Command(1, v));

        // The others elect a new leader and commit.
        AwaitLeader(sim, l => l != leader1);
        Expect(sim, sim.One(Simulation.Command(1, 103), 2) > 0, "103 did not commit on the majority");

        // The new leader is cut off; the old one returns.
        int leader2 = sim.Leader();
        sim.Disconnect(leader2);
        sim.Connect(leader1);
        Expect(sim, sim.One(Simulation.Command(1, 104), 2) > 0, "104 did not commit after the old leader rejoined");

        sim.Connect(leader2);
        Expect(sim, sim.One(Simulation.Command(1, 105), 3) > 0, "105 did not commit on all");
        sim.CheckFinal();
    });

    [Fact]
    public void Leader_backs_up_quickly_over_incorrect_follower_logs() => ForEachSeed(nameof(Leader_backs_up_quickly_over_incorrect_follower_logs), seed =>
    {
        var sim = new Simulation(seed, SimConfig.Reliable(5) with { MaxAppendBytes = 1 << 20 });
        Expect(sim, sim.One(Simulation.Command(1, 1), 5) > 0, "first command did not commit");

        // Put the leader and one follower in a partition; 50 entries that will not commit.
        int leader1 = AwaitLeader(sim);
        int f1 = (leader1 + 1) % 5;
        sim.Partition([leader1, f1]);
        for (int i = 0; i < 50; i++) sim.Nodes[leader1].Core!.Propose(Simulation.Command(2, 1000 + i));
        sim.RunTicks(ElectionTicks / 2);

        // The other three elect a leader and commit 50 entries.
        var others = Enumerable.Range(0, 5).Where(i => i != leader1 && i != f1).ToArray();
        sim.Partition(others);
        AwaitLeader(sim, others.Contains);
        for (int i = 0; i < 50; i++) Expect(sim, sim.One(Simulation.Command(3, 2000 + i), 3, retry: false) > 0, "the majority did not commit");

        // Now another partitioned leader and one follower
        int leader2 = sim.Leader();
        int other = others.First(i => i != leader2);
        sim.Disconnect(other);
        for (int i = 0; i < 50; i++) sim.Nodes[leader2].Core!.Propose(Simulation.Command(4, 3000 + i));
        sim.RunTicks(ElectionTicks / 2);

        // Bring the original leader back with its follower and one more: they must catch up over
        // 50 divergent entries, and fast (conflict hints skip a term per round trip).
        sim.Partition([leader1, f1, other]);
        AwaitLeader(sim, l => l == leader1 || l == f1 || l == other);
        for (int i = 0; i < 50; i++) Expect(sim, sim.One(Simulation.Command(5, 4000 + i), 3, retry: false) > 0, "the new majority did not commit");

        sim.ConnectAll();
        Expect(sim, sim.One(Simulation.Command(6, 5000), 5) > 0, "the healed cluster did not commit");
        sim.CheckFinal();
    });

    [Fact]
    public void Figure_8_reliable() => ForEachSeed(nameof(Figure_8_reliable), seed => Figure8(seed, SimConfig.Reliable(5)));

    [Fact]
    public void Figure_8_unreliable() => ForEachSeed(nameof(Figure_8_unreliable), seed =>
        Figure8(seed, SimConfig.Unreliable(5) with { MaxDelay = 60 }));

    /// <summary>Leaders come and go (crashes in the reliable case) while proposing, so entries of
    /// old terms sit on some logs: Figure 8's danger of committing by counting old-term replicas.</summary>
    private static void Figure8(int seed, SimConfig config)
    {
        var sim = new Simulation(seed, config);
        bool unreliable = config.Loss > 0;
        sim.One(Simulation.Command(1, 1), 1);
        int up = 5;
        for (int iteration = 0; iteration < 100; iteration++)
        {
            int leader = -1;
            foreach (var node in sim.Nodes)
            {
                if (node.Core is not { Role: Role.Leader } core) continue;
                if (core.Propose(Simulation.Command(2, iteration)).Outcome == ProposeOutcome.Accepted) leader = node.Id;
            }
            sim.RunSteps(sim.Random.Next(10) < 9 ? sim.Random.Next(1, 14) : sim.Random.Next(1, 100) * sim.Config.StepsPerTick / 10);

            if (leader >= 0 && (unreliable || sim.Random.Next(2) == 0))
            {
                if (unreliable) sim.Disconnect(leader); else sim.Crash(leader);
                up--;
            }
            if (up < 3)
            {
                int s = sim.Random.Next(5);
                if (unreliable ? !sim.IsConnected(s) : !sim.Nodes[s].Alive)
                {
                    if (unreliable) sim.Connect(s); else sim.Restart(s);
                    up++;
                }
            }
        }
        sim.CheckFinal(); // restarts and reconnects everything, then requires a commit on all
    }

    [Fact]
    public void Churn_reliable() => ForEachSeed(nameof(Churn_reliable), seed => Churn(seed, SimConfig.Reliable(5)));

    [Fact]
    public void Churn_unreliable() => ForEachSeed(nameof(Churn_unreliable), seed => Churn(seed, SimConfig.Unreliable(5)));

    /// <summary>Clients write and read all along while nodes crash, restart, disconnect and
    /// reconnect at random; the history must stay linearizable.</summary>
    private static void Churn(int seed, SimConfig config)
    {
        var sim = new Simulation(seed, config) { Keys = 3 };
        sim.AddClients(3);
        sim.ClientsActive = true;
        for (int iteration = 0; iteration < 20; iteration++)
        {
            int node = sim.Random.Next(5);
            switch (sim.Random.Next(5))
            {
                case 0: sim.Disconnect(node); break;
                case 1: sim.Connect(node); break;
                case 2: sim.Crash(node); break;
                case 3: sim.Restart(node); break;
                default:
                    // Keep a majority up now and then, so some work gets done.
                    for (int i = 0; i < 5; i++) if (!sim.Nodes[i].Alive && sim.Random.Next(2) == 0) sim.Restart(i);
                    break;
            }
            sim.RunTicks(2 + sim.Random.Next(2 * ElectionTicks));
        }
        sim.CheckFinal();
        Expect(sim, sim.AcknowledgedWrites > 0, "no write was acknowledged during the churn");
    }

    [Fact]
    public void State_survives_restarts() => ForEachSeed(nameof(State_survives_restarts), seed =>
    {
        var sim = new Simulation(seed, SimConfig.Reliable(3));
        Expect(sim, sim.One(Simulation.Command(1, 11), 3) > 0, "11 did not commit");

        // Everyone crashes and comes back from disk alone.
        for (int i = 0; i < 3; i++) sim.Crash(i);
        for (int i = 0; i < 3; i++) sim.Restart(i);
        Expect(sim, sim.One(Simulation.Command(1, 12), 3) > 0, "12 did not commit after a full restart");
        Expect(sim, sim.CountApplied(1 + 1, Simulation.Command(1, 11)) == 3 || sim.Nodes.All(n => n.AppliedLog.Any(e => e is not null && e.Data.AsSpan().SequenceEqual(Simulation.Command(1, 11)))),
            "11 was lost across the restart");

        int leader = AwaitLeader(sim);
        sim.Restart(leader);
        Expect(sim, sim.One(Simulation.Command(1, 13), 3) > 0, "13 did not commit after the leader restarted");

        leader = AwaitLeader(sim);
        sim.Crash(leader);
        Expect(sim, sim.One(Simulation.Command(1, 14), 2) > 0, "14 did not commit with one node down");
        sim.Restart(leader);
        Expect(sim, sim.One(Simulation.Command(1, 15), 3) > 0, "15 did not commit after the leader came back");

        // A follower misses entries while down and catches up from the leader.
        leader = AwaitLeader(sim);
        int follower = (leader + 1) % 3;
        sim.Crash(follower);
        Expect(sim, sim.One(Simulation.Command(1, 16), 2) > 0, "16 did not commit");
        sim.Restart(follower);
        Expect(sim, sim.One(Simulation.Command(1, 17), 3) > 0, "17 did not commit on all");
        sim.CheckFinal();
    });
}
