using RaftServer.Consensus;
using RaftServer.Hosting;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>
/// One randomised schedule, fully determined by its seed: a cluster of 3, 5 or 7 nodes on a
/// reliable or unreliable network, clients writing and reading, and a sequence of faults
/// (partitions including a cut-off leader, crashes and restarts from persisted state, crashes
/// between persisting and sending, long pauses), then healing, a liveness check and every
/// safety check. With <c>snapshots</c>, nodes also compact every few applied entries and lagging
/// nodes catch up by snapshot transfers that may fail (reported or silently); the schedule of
/// faults is the same as without. With <c>membership</c>, two spare nodes start outside the
/// configuration (as nodes started with --join) and each phase may also ask the leader for a
/// membership change: add a learner or a voter, promote a learner, remove a member (the leader
/// itself included), or hand leadership over; removed ids are never added again.
/// </summary>
internal static class Chaos
{
    /// <summary>Nodes that start outside the configuration, to be added.</summary>
    public const int Spares = 2;

    /// <summary>RAFTPS_SOAK_PHASES=n: every schedule runs n fault phases instead of 4 to 7 (a soak of
    /// long-lived clusters: many compactions, elections and membership changes in one run).</summary>
    public static readonly int? SoakPhases =
        int.TryParse(Environment.GetEnvironmentVariable("RAFTPS_SOAK_PHASES"), out var n) && n > 0 ? n : null;

    /// <param name="phases">Fault phases instead of 4 to 7 (the same schedule's first ones, then
    /// more); RAFTPS_SOAK_PHASES sets it for a whole soak.</param>
    public static Simulation Run(int seed, bool snapshots = false, bool membership = false, int? phases = null)
    {
        var random = new Random(seed);
        int nodes = (seed % 3) switch { 0 => 3, 1 => 5, _ => 7 };
        var config = random.Next(3) == 0 ? SimConfig.Reliable(nodes) : SimConfig.Unreliable(nodes) with
        {
            Loss = random.NextDouble() * 0.2,
            Duplicate = random.NextDouble() * 0.1,
            MaxDelay = 2 + random.Next(30),
        };
        // Mostly the production settings, sometimes the paper's plain algorithm.
        config = config with
        {
            PreVote = random.Next(5) != 0,
            CheckQuorum = random.Next(5) != 0,
            MaxInflightAppends = 1 + random.Next(8),
            MaxAppendBytes = random.Next(2) == 0 ? 0 : random.Next(72), // 0: one entry per Append
        };

        if (snapshots)
        {
            // A separate stream, so the fault schedule stays the seed's.
            var r = new Random(seed ^ 0x5eed);
            config = config with
            {
                SnapshotEvery = 2 + r.Next(12),
                SnapshotFailure = r.NextDouble() * 0.3,
                SilentSnapshotFailure = r.NextDouble(),
                SnapshotTimeoutTicks = r.Next(2) == 0 ? 0 : config.ElectionTicks + r.Next(4 * config.ElectionTicks),
                SnapshotTransferSteps = r.Next(60),
                CrashMidInstall = r.Next(3) == 0 ? r.NextDouble() * 0.3 : 0,
            };
        }
        // A separate stream again, so the faults stay the seed's.
        var changes = new Random(seed ^ 0x3e3b);
        if (membership)
        {
            // Pre-vote or check-quorum (the server runs with both): with neither, a removed node
            // that never learned of its removal raises everyone's term (dissertation 4.2.3), and
            // liveness after healing is not what this checks.
            config = config with { Nodes = nodes + Spares, InitialVoters = nodes, PreVote = config.PreVote || !config.CheckQuorum };
            if (!snapshots && changes.Next(2) == 0)
                config = config with { SnapshotEvery = 3 + changes.Next(12), SnapshotFailure = changes.NextDouble() * 0.2 };
        }
        // Half the schedules run with the transport's "leader gone" hint (after every crash, and
        // now and then a wrong one about a live leader); from a separate stream, so the other
        // half are the same schedules as without the hint.
        var hints = new Random(seed ^ 0x41e7);
        bool hinting = hints.Next(2) == 0;
        config = config with { HintOnCrash = hinting };
        // Watchers and lease holders, from a stream of their own (the faults stay the seed's).
        var coordination = new Random(seed ^ 0xc0de);
        config = config with { WatchWindow = coordination.Next(3) == 0 ? 4 + coordination.Next(60) : 4096 };
        var sim = new Simulation(seed, config, random.Next()) { Keys = 1 + random.Next(3) };
        sim.AddClients(2 + random.Next(3));
        sim.AddWatchers(1 + coordination.Next(3));
        sim.AddLeaseClients(coordination.Next(3), ttlMs: config.StepsPerTick * config.ElectionTicks * (2 + coordination.Next(4)));
        sim.ClientsActive = true;

        int count = 4 + random.Next(4);
        if ((phases ?? SoakPhases) is { } longer) count = longer;
        for (int phase = 0; phase < count; phase++)
        {
            sim.CrashAfterPersist = 0;
            Inject(sim, random);
            if (hinting && hints.Next(3) == 0) WrongHint(sim, hints);
            if (membership && changes.Next(3) != 0) ChangeMembership(sim, changes);
            sim.RunTicks(5 + random.Next(30));
        }
        sim.CheckFinal();
        return sim;
    }

    private static void Inject(Simulation sim, Random random)
    {
        int n = sim.Nodes.Length;
        int minority = (n - 1) / 2;
        switch (random.Next(10))
        {
            case 9:
            {
                // Leadership transfer to a random node, or to the most up-to-date one.
                int leader = sim.Leader();
                if (leader >= 0) sim.Nodes[leader].Core!.TransferLeadership(random.Next(2) == 0 ? null : random.Next(n));
                break;
            }
            case 0:
                break; // a quiet phase
            case 1:
            {
                int leader = sim.Leader();
                if (leader >= 0) sim.Disconnect(leader); // the partitioned old leader
                break;
            }
            case 2:
                sim.Partition(RandomSubset(random, n, 1 + random.Next(minority)));
                break;
            case 3:
                sim.Partition(RandomSubset(random, n, random.Next(n + 1))); // anything, maybe no majority
                break;
            case 4:
                foreach (int id in RandomSubset(random, n, 1 + random.Next(minority))) sim.Crash(id);
                break;
            case 5:
                foreach (var node in sim.Nodes)
                    if (!node.Alive) sim.Restart(node.Id);
                break;
            case 6:
                sim.Pause(random.Next(n), sim.TicksToSteps(sim.Config.ElectionTicks * (1 + random.Next(4))));
                break;
            case 7:
                sim.CrashAfterPersist = 0.01;
                break;
            default:
                sim.ConnectAll();
                break;
        }
    }

    /// <summary>One membership change (or a transfer), asked of whoever leads now.</summary>
    private static void ChangeMembership(Simulation sim, Random r)
    {
        int leader = sim.Leader();
        if (leader < 0) return;
        var config = sim.Nodes[leader].Core!.Configuration;
        var spares = Enumerable.Range(0, sim.Nodes.Length).Where(id => !config.Contains(id) && !config.WasRemoved(id)).ToArray();
        var learners = config.Members.Where(m => !m.IsVoter).Select(m => m.Id).ToArray();
        switch (r.Next(10))
        {
            case < 3 when spares.Length > 0:
                sim.ChangeMembership(leader, ChangeKind.AddLearner, spares[r.Next(spares.Length)]);
                break;
            case < 5 when learners.Length > 0:
                sim.ChangeMembership(leader, ChangeKind.Promote, learners[r.Next(learners.Length)]);
                break;
            case 5 when spares.Length > 0:
                sim.ChangeMembership(leader, ChangeKind.AddVoter, spares[r.Next(spares.Length)]);
                break;
            case < 8:
                // Any member, the leader included (it hands over once its removal commits).
                sim.ChangeMembership(leader, ChangeKind.Remove, config.Ids[r.Next(config.Ids.Length)]);
                break;
            case 8:
                sim.ChangeMembership(leader, ChangeKind.Remove, leader);
                break;
            default:
                var voters = config.VoterIds;
                sim.TransferLeadership(leader, r.Next(3) == 0 ? null : voters[r.Next(voters.Length)]);
                break;
        }
    }

    /// <summary>A live follower is told its live leader is gone (a transport that misjudged a
    /// broken connection).</summary>
    private static void WrongHint(Simulation sim, Random hints)
    {
        var node = sim.Nodes[hints.Next(sim.Nodes.Length)];
        if (node.Core is { Role: RaftServer.Consensus.Role.Follower, LeaderId: >= 0 } core && sim.Nodes[core.LeaderId].Alive)
            sim.TellLeaderGone(node.Id, core.LeaderId);
    }

    private static HashSet<int> RandomSubset(Random random, int n, int size)
    {
        var set = new HashSet<int>();
        while (set.Count < Math.Min(size, n)) set.Add(random.Next(n));
        return set;
    }
}
