using RaftServer.Cluster;
using RaftServer.Consensus;
using RaftServer.Hosting;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>Safety properties checked as the run goes and at its end.</summary>
internal sealed partial class Simulation
{
    /// <summary>
    /// A node that is its configuration's only voter becomes leader in memory at once, before the
    /// Ready that holds its new term and self-vote is saved. If it crashes before that save and
    /// before any message of the term left it (the driver sends none until the term is durable),
    /// its leadership was never known to anyone: the restarted node has an older term and may vote
    /// for another leader of that term. Election safety is about leaders that could be known, so
    /// such a term is forgotten here; one in which a message left still counts.
    /// </summary>
    private void ForgetLeadershipNobodySaw(SimNode node)
    {
        foreach (var term in leaderOfTerm.Where(t => t.Value == node.Id && t.Key > node.HardState.Term && t.Key > node.SentTerm).Select(t => t.Key).ToList())
        {
            Trace?.Invoke($"{Now} node {node.Id} crashed before its leadership of term {term} was durable or seen");
            leaderOfTerm.Remove(term);
        }
    }

    private void Observe(SimNode node)
    {
        var core = node.Core!;
        if (core.Term < node.LastTerm) Fail($"node {node.Id}'s term went back from {node.LastTerm} to {core.Term}");
        if (Trace is not null && (core.Term != node.LastTerm || core.Role != node.LastRole))
            Trace($"{Now} node {node.Id} is {core.Role} in term {core.Term} (last {core.LastIndex}/{core.LastTerm})");
        node.LastTerm = core.Term;
        if (core.Role == Role.Leader && (node.LastRole != Role.Leader || !leaderOfTerm.ContainsKey(core.Term)))
        {
            // Election safety: at most one leader per term.
            if (leaderOfTerm.TryGetValue(core.Term, out int other) && other != node.Id)
                Fail($"two leaders in term {core.Term}: {other} and {node.Id}");
            leaderOfTerm[core.Term] = node.Id;
            ElectionsWon++;
            // Leader completeness: a leader of a term after an entry was committed holds it.
            for (int i = 0; i < applied.Count; i++)
            {
                long index = i + 1;
                if (index < core.FirstIndex || appliedInTerm[i] >= core.Term) continue;
                if (core.TermAt(index) != applied[i].Term)
                    Fail($"leader {node.Id} of term {core.Term} lacks committed entry {index} (term {applied[i].Term})");
            }
        }
        node.LastRole = core.Role;
    }

    /// <summary>The driver applied <paramref name="entry"/> on <paramref name="node"/>.</summary>
    private void OnApplied(SimNode node, Entry entry)
    {
        if (entry.Index != node.AppliedLog.Count + 1)
            Fail($"node {node.Id} applied index {entry.Index} after {node.AppliedLog.Count}: out of order or twice");
        node.AppliedLog.Add(entry);

        // State machine safety: no two nodes apply different entries at one index.
        int i = (int)entry.Index - 1;
        if (i < applied.Count)
        {
            var first = applied[i];
            if (first.Term != entry.Term || first.Kind != entry.Kind || !first.Data.AsSpan().SequenceEqual(entry.Data))
                Fail($"node {node.Id} applied {Show(entry)} at index {entry.Index} where another applied {Show(first)}");
        }
        else
        {
            applied.Add(entry);
            appliedInTerm.Add(node.Core!.Term);
            appliedAt.Add(Now);
            RecordReference(entry);
            if (entry.Kind == EntryKind.Configuration)
            {
                var config = Configuration.Decode(entry.Data);
                if (!config.Equals(agreedConfig ?? BootstrapConfiguration)) CommittedConfigurationChanges++;
                agreedConfig = config;
            }
        }
    }

    private Configuration? agreedConfig;

    /// <summary>Configuration entries that changed the members, in the agreed log.</summary>
    public int CommittedConfigurationChanges { get; private set; }

    /// <summary>The members of the configuration at the end of <see cref="CheckFinal"/>.</summary>
    public int FinalMembers { get; private set; }

    private static string Show(Entry e) => Decode(e) is { } c ? $"(term {e.Term}, {c.Key}={c.Value})" : $"(term {e.Term}, {e.Kind})";

    // ---- final checks ----------------------------------------------------------------------

    /// <summary>Log matching over the live in-memory logs and the persisted ones: if two logs have
    /// an entry with the same index and term, they are identical up to that index.</summary>
    public void CheckLogMatching()
    {
        var logs = new List<(string Name, Func<long, Entry?> At, long Last)>();
        foreach (var node in Nodes)
        {
            logs.Add(($"node {node.Id} (disk)", node.LogAt, node.LastLogIndex));
            if (node.Core is { } core)
                logs.Add(($"node {node.Id} (memory)", i => i >= core.FirstIndex && i <= core.LastIndex ? core.EntryAt(i) : null, core.LastIndex));
        }
        for (int a = 0; a < logs.Count; a++)
        {
            for (int b = a + 1; b < logs.Count; b++)
            {
                long top = Math.Min(logs[a].Last, logs[b].Last);
                long highestSame = 0;
                for (long i = top; i >= 1; i--)
                {
                    var x = logs[a].At(i);
                    var y = logs[b].At(i);
                    if (x is not null && y is not null && x.Term == y.Term) { highestSame = i; break; }
                }
                for (long i = 1; i <= highestSame; i++)
                {
                    // Below a snapshot an entry is gone; snapshots are checked against the agreed log.
                    if (logs[a].At(i) is not { } x || logs[b].At(i) is not { } y) continue;
                    if (x.Term != y.Term || x.Kind != y.Kind || !x.Data.AsSpan().SequenceEqual(y.Data))
                        Fail($"log matching: {logs[a].Name} and {logs[b].Name} agree at index {highestSame} but differ at {i}");
                }
            }
        }
    }

    /// <summary>
    /// Heals everything, restarts crashed nodes and requires liveness: a leader within 10 election
    /// timeouts and a new command committed on every node; then checks that no acknowledged write
    /// was lost, log matching, and the linearizability of the clients' history.
    /// </summary>
    public void CheckFinal()
    {
        StopClients();
        CrashAfterPersist = 0;
        ConnectAll();
        foreach (var node in Nodes)
        {
            node.PausedUntil = 0;
            if (!node.Alive) Start(node);
        }
        CrashAfterPersist = 0;
        // "Messages flowing", as on the real transport (a stream per peer): delays and duplicates
        // stay; losses stop and each link keeps its order. (Safety held under full reordering up
        // to here; reordering only slows catch-up, as every rejected out-of-order Append sends the
        // leader back to probing.)
        Loss = 0;
        SnapshotFailure = 0;
        CrashMidInstall = 0;
        Fifo = true;

        int limit = 10 * Config.ElectionTicks;
        if (!RunUntil(() => Leader() != NoLeader, limit))
            Fail($"no leader within {limit} ticks of healing the network");
        // Every member of the cluster's configuration (voters and learners) must apply a new
        // command; nodes removed from it no longer hear from the leader. (The configuration is the
        // leader's when the command has been applied: a stale leader's may yet be truncated away.)
        // Learners may lag far behind (a leader commits without them: with one voter, at once)
        // and catch up by about one Append per heartbeat where messages are lost, so they are
        // given longer than the voters. A node that was down for the whole run catches up one
        // Append round trip per batch of entries: allow for that too (one entry per round trip
        // when MaxAppendBytes makes batches of one).
        long lastIndex = Nodes.Max(n => n.Core!.LastIndex);
        long behind = lastIndex - Nodes.Min(n => n.AppliedLog.Count);
        int catchUp = Math.Max(4 * limit, limit + (int)(behind * (2 * Config.MaxDelay + 2) / Math.Max(1, Config.MaxInflightAppends) / Config.StepsPerTick));
        long index = One(Command(0, nextValue++), 0, maxTicks: catchUp, members: true);
        var members = LeaderConfiguration() ?? Configuration.Empty;
        FinalMembers = members.Count;
        if (index < 0) Fail($"a command did not commit on all members ({members}) within {catchUp} ticks of healing ({behind} entries to catch up)");

        // Client commands keep flowing: with everyone back, clients get writes acknowledged.
        if (clients.Count > 0)
        {
            int before = acknowledged.Count;
            ClientsActive = true;
            if (!RunUntil(() => acknowledged.Count > before, limit))
                Fail($"no client write was acknowledged within {limit} ticks of healing");
            StopClients();
        }

        foreach (var (ackIndex, data) in acknowledged)
        {
            if (ackIndex > applied.Count || !applied[(int)ackIndex - 1].Data.AsSpan().SequenceEqual(data))
                Fail($"acknowledged write at index {ackIndex} was lost");
        }
        foreach (var node in Nodes)
            if (members.Contains(node.Id) && node.AppliedLog.Count < index) Fail($"node {node.Id} applied only {node.AppliedLog.Count} of {index}");

        CheckLogMatching();
        CheckClusterIds(members);
        if (!LinearizabilityChecker.IsLinearizable(history.Concat(ResolveUnknownWrites()), out var problem)) Fail(problem!);
        CheckWatchers();
        CheckLeases();
    }

    /// <summary>
    /// Cluster identity: every node that knows an id knows the same one, the first id committed in
    /// the agreed log (leaders of different terms may each have proposed one), and every member
    /// that applied that entry knows it (one that caught up by snapshot past it learns the id from
    /// the snapshot, as the server's header carries it).
    /// </summary>
    private void CheckClusterIds(Configuration members)
    {
        long firstIndex = 0;
        ulong first = ClusterIdentity.Unknown;
        for (int i = 0; i < applied.Count && first == ClusterIdentity.Unknown; i++)
            if (applied[i].Kind == EntryKind.NoOp && ClusterIdKeeper.TryDecode(applied[i].Data, out var id)) (first, firstIndex) = (id, i + 1);
        if (first == ClusterIdentity.Unknown) Fail("no cluster id was committed");
        foreach (var node in Nodes)
        {
            if (node.DurableClusterId != ClusterIdentity.Unknown && node.DurableClusterId != first)
                Fail($"node {node.Id} adopted cluster id {ClusterIdentity.Format(node.DurableClusterId)}, the first committed is {ClusterIdentity.Format(first)} (index {firstIndex})");
            if (members.Contains(node.Id) && node.AppliedLog.Count >= firstIndex && node.AppliedLog[(int)firstIndex - 1] is not null
                && node.DurableClusterId != first)
                Fail($"node {node.Id} applied the cluster id's entry (index {firstIndex}) but knows {ClusterIdentity.Format(node.DurableClusterId)}");
        }
    }

    public void Fail(string problem) => throw new SimulationFailure(Seed, problem + "\n" + Describe());

    /// <summary>Each node's state, for failure messages.</summary>
    public string Describe()
    {
        var lines = new List<string> { $"at step {Now} ({Config}):" };
        foreach (var node in Nodes)
        {
            string links = string.Join("", Enumerable.Range(0, Nodes.Length).Select(j => linked[node.Id, j] ? "1" : "0"));
            lines.Add(node.Core is { } c
                ? $"  node {node.Id}: {c.Role} term {c.Term} leader {c.LeaderId} vote {node.HardState.VotedFor} snapshot {c.SnapshotIndex} last {c.LastIndex}/{c.LastTerm} commit {c.CommitIndex} applied {node.AppliedLog.Count} links {links}{(node.IsPaused(Now) ? " paused" : "")}" +
                  $" members [{c.Configuration}] at {c.ConfigurationIndex}" +
                  (c.Role == Role.Leader ? $" progress [{string.Join(", ", c.Progress.Select(p => $"{p.Id}:{p.Match}/{p.Next}"))}]" : "")
                : $"  node {node.Id}: crashed; disk term {node.HardState.Term} snapshot {node.SnapshotIndex} log {node.LogStart}..{node.LastLogIndex}");
        }
        return string.Join("\n", lines);
    }
}
