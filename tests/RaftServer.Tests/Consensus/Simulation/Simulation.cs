using RaftServer.Consensus;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>
/// A deterministic simulation of a Raft cluster: every choice (delays, losses, timeouts, faults,
/// client operations) comes from one Random seeded with <see cref="Seed"/>, so a run replays
/// exactly. Nodes run the real core and a driver that does what the server's does: persist the
/// Ready, then send, then apply, then Advance; a crash loses everything not persisted.
/// Safety is checked as the run goes (election safety, leader completeness, state machine
/// safety) and by <see cref="CheckFinal"/> (log matching, no acknowledged write lost,
/// linearizability of the clients' history).
/// </summary>
internal sealed class Simulation
{
    public const int NoLeader = -1;

    private readonly Random random;
    private readonly PriorityQueue<Message, (long Time, long Seq)> network = new();
    private long sequence;
    private readonly bool[,] linked;
    private readonly bool[] detached;
    private readonly Dictionary<long, int> leaderOfTerm = new();
    /// <summary>The entry applied at each index by any node ([index - 1]); all must agree.</summary>
    private readonly List<Entry> applied = new();
    /// <summary>For each applied index, the term of the first node to apply it: at least the term
    /// in which the entry was committed (it learned the commit from a leader of that term or later).</summary>
    private readonly List<long> appliedInTerm = new();
    private readonly List<SimClient> clients = new();
    private readonly List<Operation> history = new();
    private readonly List<(long Index, long Term, byte[] Data)> acknowledged = new();
    private long nextRequestId = 1;
    private int nextValue = 1;

    /// <param name="seed">Named in failures; with no <paramref name="randomSeed"/> it also seeds the run.</param>
    public Simulation(int seed, SimConfig config, int? randomSeed = null)
    {
        Seed = seed;
        Config = config;
        random = new Random(randomSeed ?? seed);
        Loss = config.Loss;
        Nodes = new SimNode[config.Nodes];
        linked = new bool[config.Nodes, config.Nodes];
        detached = new bool[config.Nodes];
        lastDelivery = new long[config.Nodes, config.Nodes];
        for (int i = 0; i < config.Nodes; i++)
        {
            Nodes[i] = new SimNode(i);
            for (int j = 0; j < config.Nodes; j++) linked[i, j] = true;
        }
        foreach (var node in Nodes) Start(node);
    }

    /// <summary>Set RAFTPS_TRACE=1 to print every delivery and role change (with RAFTPS_SEED).</summary>
    public Action<string>? Trace { get; set; } =
        Environment.GetEnvironmentVariable("RAFTPS_TRACE") == "1" ? Console.WriteLine : null;

    public int Seed { get; }
    public SimConfig Config { get; }
    public SimNode[] Nodes { get; }
    public long Now { get; private set; }
    public Random Random => random;
    public int Keys { get; set; } = 3;
    public bool ClientsActive { get; set; }
    public double CrashAfterPersist { get; set; }
    /// <summary>The current loss rate (starts at Config.Loss; the final check sets it to 0).</summary>
    public double Loss { get; set; }
    /// <summary>Keep each link's messages in order (the final check turns it on; until then
    /// random delays reorder freely).</summary>
    public bool Fifo { get; set; }
    private readonly long[,] lastDelivery;
    public int ElectionsWon { get; private set; }
    public IReadOnlyList<Operation> History => history;
    public int AcknowledgedWrites => acknowledged.Count;
    public long TicksToSteps(int ticks) => (long)ticks * Config.StepsPerTick;

    // ---- faults ----------------------------------------------------------------------------

    /// <summary>Takes a node off the network (the course suite's disconnect).</summary>
    public void Disconnect(int id)
    {
        detached[id] = true;
        for (int j = 0; j < Nodes.Length; j++)
        {
            if (j == id) continue;
            linked[id, j] = false;
            linked[j, id] = false;
        }
    }

    /// <summary>Puts a node back on the network: it reaches every node that is not itself detached.</summary>
    public void Connect(int id)
    {
        detached[id] = false;
        for (int j = 0; j < Nodes.Length; j++)
        {
            if (detached[j]) continue;
            linked[id, j] = true;
            linked[j, id] = true;
        }
    }

    public void ConnectAll()
    {
        Array.Clear(detached);
        for (int i = 0; i < Nodes.Length; i++) Connect(i);
    }

    public bool IsConnected(int id) => !detached[id];

    /// <summary>Splits the cluster: nodes in <paramref name="side"/> talk only among themselves.</summary>
    public void Partition(IReadOnlyCollection<int> side)
    {
        Array.Clear(detached);
        for (int i = 0; i < Nodes.Length; i++)
            for (int j = 0; j < Nodes.Length; j++)
                linked[i, j] = side.Contains(i) == side.Contains(j);
    }

    public void Crash(int id)
    {
        var node = Nodes[id];
        if (!node.Alive) return;
        node.LoseVolatileState();
        FailClientsOn(id);
    }

    public void Restart(int id)
    {
        var node = Nodes[id];
        if (node.Alive) Crash(id);
        Start(node);
    }

    /// <summary>Freezes a node (a long GC or VM pause): it neither ticks nor handles messages;
    /// messages sent to it wait until it resumes.</summary>
    public void Pause(int id, long steps) => Nodes[id].PausedUntil = Now + steps;

    private void Start(SimNode node)
    {
        var options = new RaftOptions
        {
            Id = node.Id,
            Members = Enumerable.Range(0, Nodes.Length).ToArray(),
            ElectionTicks = Config.ElectionTicks,
            HeartbeatTicks = Config.HeartbeatTicks,
            PreVote = Config.PreVote,
            CheckQuorum = Config.CheckQuorum,
            MaxInflightAppends = Config.MaxInflightAppends,
            MaxAppendBytes = Config.MaxAppendBytes,
            Random = new Random(random.Next()),
        };
        node.Core = new RaftNode(options, node.Persisted());
        node.LastRole = Role.Follower;
        node.LastTerm = node.Core.Term;
        // Nodes tick out of phase, as real timers do.
        node.TickPhase = random.Next(Config.StepsPerTick);
        HandleReady(node);
    }

    // ---- the clock -----------------------------------------------------------------------------

    public void RunSteps(long steps)
    {
        for (long i = 0; i < steps; i++) Step();
    }

    public void RunTicks(int ticks) => RunSteps(TicksToSteps(ticks));

    /// <summary>Runs until <paramref name="condition"/> holds, at most <paramref name="maxTicks"/> ticks.</summary>
    public bool RunUntil(Func<bool> condition, int maxTicks)
    {
        long end = Now + TicksToSteps(maxTicks);
        while (Now < end)
        {
            if (condition()) return true;
            Step();
        }
        return condition();
    }

    private void Step()
    {
        Now++;
        while (network.TryPeek(out var message, out var at) && at.Time <= Now)
        {
            network.Dequeue();
            Deliver(message);
        }
        foreach (var node in Nodes)
        {
            if (!node.Alive || node.IsPaused(Now)) continue;
            if ((Now + node.TickPhase) % Config.StepsPerTick == 0)
            {
                node.Core!.Tick();
                Observe(node);
            }
        }
        if (ClientsActive) RunClients();
        foreach (var node in Nodes)
            if (node.Alive && !node.IsPaused(Now)) HandleReady(node);
    }

    private void Deliver(Message message)
    {
        var node = Nodes[message.To];
        if (!linked[message.From, message.To] || !node.Alive) return;
        if (node.IsPaused(Now))
        {
            network.Enqueue(message, (node.PausedUntil + random.Next(1, 3), sequence++));
            return;
        }
        Trace?.Invoke($"{Now} deliver {message.Type} {message.From}->{message.To} t{message.Term} i{message.Index} lt{message.LogTerm} n{message.Entries.Count} c{message.Commit} rej{message.Reject} hint{message.RejectHint}/{message.HintTerm} ctx{message.Context}");
        node.Core!.Step(message);
        Observe(node);
    }

    private void Send(Message message)
    {
        if (!linked[message.From, message.To]) return;
        if (random.NextDouble() < Loss) return;
        Enqueue(message);
        if (random.NextDouble() < Config.Duplicate) Enqueue(message);
    }

    private void Enqueue(Message message)
    {
        long at = Now + random.Next(Config.MinDelay, Config.MaxDelay + 1);
        if (Fifo)
        {
            // As on one gRPC stream per peer: later messages never overtake earlier ones.
            at = Math.Max(at, lastDelivery[message.From, message.To]);
            lastDelivery[message.From, message.To] = at;
        }
        network.Enqueue(message, (at, sequence++));
    }

    /// <summary>The driver's loop turn: persist, (maybe crash), send, apply, answer reads, Advance.</summary>
    private void HandleReady(SimNode node)
    {
        while (node.Core is { HasReady: true } core)
        {
            var ready = core.GetReady();
            node.Persist(ready);
            if (CrashAfterPersist > 0 && random.NextDouble() < CrashAfterPersist)
            {
                // Persisted but nothing sent or applied: the messages die with the process.
                Crash(node.Id);
                return;
            }
            foreach (var message in ready.Messages) Send(message);
            foreach (var entry in ready.CommittedEntries) Apply(node, entry);
            foreach (var read in ready.ReadStates) OnReadState(node, read);
            core.Advance(ready);
            CompleteReads(node);
        }
    }

    // ---- safety checked as the run goes ------------------------------------------------------

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

    private void Apply(SimNode node, Entry entry)
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
        }

        if (entry.Kind == EntryKind.Command)
        {
            var (key, value) = SimNode.Decode(entry.Data);
            node.Kv[key] = value;
        }

        foreach (var client in clients)
        {
            if (client.State != SimClient.Phase.AwaitApply || client.Node != node.Id || client.Index != entry.Index) continue;
            if (entry.Term == client.Term)
            {
                history.Add(new Operation(client.Id, true, client.Key, client.Value, client.CallTime, Now));
                acknowledged.Add((entry.Index, entry.Term, entry.Data));
            }
            // Another term's entry at our index: ours was overwritten and can never commit, so the
            // write did not happen and leaves no trace in the history.
            Finish(client);
        }
    }

    private static string Show(Entry e) => e.Kind == EntryKind.Command
        ? $"(term {e.Term}, {SimNode.Decode(e.Data).Key}={SimNode.Decode(e.Data).Value})" : $"(term {e.Term}, {e.Kind})";

    // ---- clients -------------------------------------------------------------------------------

    public void AddClients(int count)
    {
        for (int i = 0; i < count; i++) clients.Add(new SimClient(clients.Count, random.Next(Nodes.Length)));
    }

    private long OperationTimeout => TicksToSteps(4 * Config.ElectionTicks);

    private void RunClients()
    {
        foreach (var client in clients)
        {
            if (client.State != SimClient.Phase.Idle)
            {
                if (Now >= client.Deadline) GiveUp(client);
                continue;
            }
            if (Now < client.NextActionAt) continue;
            StartOperation(client);
        }
    }

    private void StartOperation(SimClient client)
    {
        var node = Nodes[client.PreferredNode];
        if (!node.Alive || node.IsPaused(Now))
        {
            client.PreferredNode = random.Next(Nodes.Length);
            client.NextActionAt = Now + random.Next(1, Config.StepsPerTick);
            return;
        }
        var core = node.Core!;
        client.Key = 1 + random.Next(Keys);
        client.IsWrite = random.Next(2) == 0;
        client.Node = node.Id;
        client.CallTime = Now;
        client.Deadline = Now + OperationTimeout;
        if (client.IsWrite)
        {
            client.Value = nextValue++;
            var result = core.Propose(SimNode.Encode(client.Key, client.Value));
            if (result.Outcome != ProposeOutcome.Accepted)
            {
                Redirect(client, result.LeaderHint);
                return;
            }
            client.Index = result.Index;
            client.Term = result.Term;
            client.State = SimClient.Phase.AwaitApply;
        }
        else
        {
            client.RequestId = nextRequestId++;
            if (!core.ReadIndex(client.RequestId))
            {
                Redirect(client, NoLeader);
                return;
            }
            client.State = SimClient.Phase.AwaitReadState;
        }
        HandleReady(node);
    }

    private void Redirect(SimClient client, int hint)
    {
        client.PreferredNode = hint >= 0 && random.Next(4) != 0 ? hint : random.Next(Nodes.Length);
        client.NextActionAt = Now + random.Next(1, Config.StepsPerTick);
    }

    private void OnReadState(SimNode node, ReadState read)
    {
        foreach (var client in clients)
        {
            if (client.State != SimClient.Phase.AwaitReadState || client.Node != node.Id || client.RequestId != read.RequestId) continue;
            if (read.Index < 0)
            {
                Finish(client); // failed fast: no effect, no answer
                Redirect(client, NoLeader);
                return;
            }
            client.Index = read.Index;
            client.State = SimClient.Phase.AwaitApplied;
            return;
        }
    }

    private void CompleteReads(SimNode node)
    {
        foreach (var client in clients)
        {
            if (client.State != SimClient.Phase.AwaitApplied || client.Node != node.Id) continue;
            if (node.AppliedLog.Count < client.Index) continue;
            int value = node.Kv.GetValueOrDefault(client.Key);
            history.Add(new Operation(client.Id, false, client.Key, value, client.CallTime, Now));
            Finish(client);
        }
    }

    private void Finish(SimClient client)
    {
        client.State = SimClient.Phase.Idle;
        client.NextActionAt = Now + random.Next(0, Config.StepsPerTick);
    }

    /// <summary>No answer in time: a write may still happen (or not), a read constrains nothing.</summary>
    private void GiveUp(SimClient client)
    {
        if (client.IsWrite && client.State == SimClient.Phase.AwaitApply)
            history.Add(new Operation(client.Id, true, client.Key, client.Value, client.CallTime, Operation.Pending));
        Finish(client);
        client.PreferredNode = random.Next(Nodes.Length);
    }

    private void FailClientsOn(int nodeId)
    {
        foreach (var client in clients)
            if (client.State != SimClient.Phase.Idle && client.Node == nodeId) GiveUp(client);
    }

    public void StopClients()
    {
        ClientsActive = false;
        foreach (var client in clients)
            if (client.State != SimClient.Phase.Idle) GiveUp(client);
    }

    // ---- queries for scenarios ----------------------------------------------------------------

    /// <summary>The leader of the highest term among live, connected-to-a-majority nodes, if any.</summary>
    public int Leader()
    {
        int leader = NoLeader;
        long best = -1;
        foreach (var node in Nodes)
        {
            if (node.Core is not { Role: Role.Leader } core || node.IsPaused(Now)) continue;
            if (core.Term > best)
            {
                best = core.Term;
                leader = node.Id;
            }
        }
        return leader;
    }

    /// <summary>How many live nodes have applied exactly <paramref name="data"/> at <paramref name="index"/>.</summary>
    public int CountApplied(long index, byte[] data)
    {
        int count = 0;
        foreach (var node in Nodes)
        {
            if (node.AppliedLog.Count < index) continue;
            if (node.AppliedLog[(int)index - 1].Data.AsSpan().SequenceEqual(data)) count++;
        }
        return count;
    }

    /// <summary>The course suite's one(): submit a command at the leader and wait until
    /// <paramref name="expected"/> nodes applied it; retries while leadership moves. Returns its
    /// index, or -1 on timeout.</summary>
    public long One(byte[] command, int expected, int maxTicks = 200, bool retry = true)
    {
        long deadline = Now + TicksToSteps(maxTicks);
        while (Now < deadline)
        {
            long index = -1;
            int leader = Leader();
            if (leader >= 0)
            {
                var node = Nodes[leader];
                var result = node.Core!.Propose(command);
                if (result.Outcome == ProposeOutcome.Accepted)
                {
                    index = result.Index;
                    HandleReady(node);
                }
            }
            if (index > 0)
            {
                long waitUntil = Math.Min(deadline, Now + TicksToSteps(4 * Config.ElectionTicks));
                while (Now < waitUntil)
                {
                    if (CountApplied(index, command) >= expected) return index;
                    Step();
                }
                if (!retry) return -1;
            }
            else
            {
                RunSteps(Config.StepsPerTick);
            }
        }
        return -1;
    }

    public static byte[] Command(int key, int value) => SimNode.Encode(key, value);

    // ---- final checks ----------------------------------------------------------------------

    /// <summary>Log matching over the live in-memory logs and the persisted ones: if two logs have
    /// an entry with the same index and term, they are identical up to that index.</summary>
    public void CheckLogMatching()
    {
        var logs = new List<(string Name, Func<long, Entry?> At, long Last)>();
        foreach (var node in Nodes)
        {
            var persisted = node.Log;
            logs.Add(($"node {node.Id} (disk)", i => i >= 1 && i <= persisted.Count ? persisted[(int)i - 1] : null, persisted.Count));
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
                    var x = logs[a].At(i)!;
                    var y = logs[b].At(i)!;
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
        Fifo = true;

        int limit = 10 * Config.ElectionTicks;
        if (!RunUntil(() => Leader() != NoLeader, limit))
            Fail($"no leader within {limit} ticks of healing the network");
        long index = One(Command(0, nextValue++), Nodes.Length, maxTicks: limit);
        if (index < 0) Fail($"a command did not commit on all {Nodes.Length} nodes within {limit} ticks of healing");

        // Client commands keep flowing: with everyone back, clients get writes acknowledged.
        if (clients.Count > 0)
        {
            int before = acknowledged.Count;
            ClientsActive = true;
            if (!RunUntil(() => acknowledged.Count > before, limit))
                Fail($"no client write was acknowledged within {limit} ticks of healing");
            StopClients();
        }

        foreach (var (ackIndex, term, data) in acknowledged)
        {
            if (ackIndex > applied.Count || applied[(int)ackIndex - 1].Term != term || !applied[(int)ackIndex - 1].Data.AsSpan().SequenceEqual(data))
                Fail($"acknowledged write at index {ackIndex} (term {term}) was lost");
        }
        foreach (var node in Nodes)
            if (node.AppliedLog.Count < index) Fail($"node {node.Id} applied only {node.AppliedLog.Count} of {index}");

        CheckLogMatching();
        if (!LinearizabilityChecker.IsLinearizable(history, out var problem)) Fail(problem!);
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
                ? $"  node {node.Id}: {c.Role} term {c.Term} leader {c.LeaderId} vote {node.HardState.VotedFor} last {c.LastIndex}/{c.LastTerm} commit {c.CommitIndex} applied {node.AppliedLog.Count} links {links}{(node.IsPaused(Now) ? " paused" : "")}"
                : $"  node {node.Id}: crashed; disk term {node.HardState.Term} log {node.Log.Count}");
        }
        return string.Join("\n", lines);
    }
}

internal sealed class SimulationFailure(int seed, string problem) : Exception($"seed {seed}: {problem}")
{
    /// <summary>Set RAFTPS_TRACE=1 to print every delivery and role change (with RAFTPS_SEED).</summary>
    public Action<string>? Trace { get; set; } =
        Environment.GetEnvironmentVariable("RAFTPS_TRACE") == "1" ? Console.WriteLine : null;

    public int Seed { get; } = seed;
}
