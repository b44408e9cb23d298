using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.StateMachine;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>
/// A deterministic simulation of a Raft cluster: every choice (delays, losses, timeouts, faults,
/// client operations) comes from one Random seeded with <see cref="Seed"/>, so a run replays
/// exactly. Each node runs the server's own <see cref="RaftDriver"/> (the core, the key-value
/// store, the pending client requests and the Ready handling of the real node loop) on a
/// simulated disk (<see cref="SimNode"/>) and network (<see cref="SimPorts"/>); a crash loses
/// everything not persisted, including in the middle of a Ready.
/// Safety is checked as the run goes (election safety, leader completeness, state machine
/// safety) and by <see cref="CheckFinal"/> (log matching, no acknowledged write lost,
/// linearizability of the clients' history).
/// </summary>
internal sealed partial class Simulation
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
    /// <summary>The step at which each agreed index was first applied ([index - 1]).</summary>
    private readonly List<long> appliedAt = new();
    private readonly List<SimClient> clients = new();
    private readonly List<Operation> history = new();
    /// <summary>Writes whose client was told the outcome: the index it was told and the command
    /// (unique: every client command carries its own session and sequence).</summary>
    private readonly List<(long Index, byte[] Data)> acknowledged = new();
    /// <summary>Writes whose outcome the client never learned, resolved against the agreed log at the end.</summary>
    private readonly List<UnknownWrite> unknownWrites = new();
    private int nextValue = 1;

    /// <param name="seed">Named in failures; with no <paramref name="randomSeed"/> it also seeds the run.</param>
    public Simulation(int seed, SimConfig config, int? randomSeed = null)
    {
        Seed = seed;
        Config = config;
        random = new Random(randomSeed ?? seed);
        Loss = config.Loss;
        SnapshotFailure = config.SnapshotFailure;
        CrashMidInstall = config.CrashMidInstall;
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
    /// <summary>The current snapshot transfer failure rate (starts at Config.SnapshotFailure; the
    /// final check sets it to 0).</summary>
    public double SnapshotFailure { get; set; }
    /// <summary>Starts at Config.CrashMidInstall; the final check sets it to 0.</summary>
    public double CrashMidInstall { get; set; }
    /// <summary>Keep each link's messages in order (the final check turns it on; until then
    /// random delays reorder freely).</summary>
    public bool Fifo { get; set; }
    private readonly long[,] lastDelivery;
    public int ElectionsWon { get; private set; }
    public IReadOnlyList<Operation> History => history;
    public int AcknowledgedWrites => acknowledged.Count;
    public long TicksToSteps(int ticks) => (long)ticks * Config.StepsPerTick;

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
        DeliverReports();
        foreach (var node in Nodes)
        {
            if (!node.Alive || node.IsPaused(Now)) continue;
            if ((Now + node.TickPhase) % Config.StepsPerTick == 0)
            {
                node.Driver!.Tick();
                Observe(node);
            }
        }
        if (ClientsActive)
        {
            RunClients();
            RunLeaseClients();
        }
        RunWatchers();
        foreach (var node in Nodes)
            if (node.Alive && !node.IsPaused(Now)) HandleReady(node);
    }

    /// <summary>As the receiving host's transport does (PeerInbox, PeerHandshake): a message from a
    /// node it neither lists, nor still sends to, nor can link back to (one whose removal it has
    /// committed) never reaches its core.</summary>
    private static bool Admits(RaftServer.Cluster.Membership membership, int from) =>
        membership.Contains(from) || membership.IsDeparting(from) || membership.LearnRemote(new RaftServer.Cluster.NodeAddress(from, "sim", 1 + from));

    private void Deliver(Message message)
    {
        var node = Nodes[message.To];
        if (node.IsPaused(Now) && node.Alive && linked[message.From, message.To])
        {
            network.Enqueue(message, (node.PausedUntil + random.Next(1, 3), sequence++));
            return;
        }
        if (message.Type == MessageType.Snapshot)
        {
            DeliverSnapshot(message);
            return;
        }
        if (!linked[message.From, message.To] || !node.Alive) return;
        if (!Admits(node.Membership!, message.From))
        {
            Trace?.Invoke($"{Now} refused {message.Type} {message.From}->{message.To}: node {message.To} committed its removal");
            return;
        }
        Trace?.Invoke($"{Now} deliver {message.Type} {message.From}->{message.To} t{message.Term} i{message.Index} lt{message.LogTerm} n{message.Entries.Count} c{message.Commit} rej{message.Reject} hint{message.RejectHint}/{message.HintTerm} ctx{message.Context}");
        node.Driver!.Receive([message]);
        Observe(node);
    }

    /// <summary>A message a node's driver sends (not a Snapshot: those go through <see cref="SendSnapshot"/>).</summary>
    public void Send(Message message)
    {
        Nodes[message.From].SentTerm = Math.Max(Nodes[message.From].SentTerm, message.Term);
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

    /// <summary>
    /// The node loop's turn after its events: the turn's reads share a read index, the core ends
    /// its turn, and each Ready is handled by the server's driver (persist, send, apply, answer,
    /// Advance), then a snapshot may be taken. A simulated crash may strike inside a Ready: after
    /// a leader's early appends left but before its fsync, or after the fsync and before the rest
    /// was sent (<see cref="CrashAfterPersist"/>), or between saving a received snapshot and
    /// discarding the old log (<see cref="CrashMidInstall"/>).
    /// </summary>
    private void HandleReady(SimNode node)
    {
        if (node.Driver is not { } driver) return;
        try
        {
            driver.StartReads();
            driver.EndTurn();
            while (driver.HasReady)
            {
                if (CrashAfterPersist > 0 && random.NextDouble() < CrashAfterPersist)
                {
                    if (random.Next(2) == 0) node.CrashBeforeNextSave = true;
                    else node.CrashAfterNextSave = true;
                }
                driver.ProcessReady();
                node.CrashBeforeNextSave = node.CrashAfterNextSave = false;
                if (driver.Node.AppliedIndex != node.AppliedLog.Count)
                    Fail($"node {node.Id}: the core's applied index {driver.Node.AppliedIndex} is not the state machine's {node.AppliedLog.Count}");
                MaybeTakeSnapshot(node);
            }
        }
        catch (SimulatedCrash)
        {
            Crash(node.Id);
            return;
        }
        CollectAnswers(node);
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

    /// <summary>The configuration of the current leader (<see cref="Leader"/>), or null without one.</summary>
    public Configuration? LeaderConfiguration() => Leader() is var leader and >= 0 ? Nodes[leader].Core!.Configuration : null;

    /// <summary>How many live nodes (of <paramref name="among"/>, when given) have applied exactly <paramref name="data"/> at <paramref name="index"/>.</summary>
    public int CountApplied(long index, byte[] data, Configuration? among = null)
    {
        int count = 0;
        foreach (var node in Nodes)
        {
            if (node.AppliedLog.Count < index || among?.Contains(node.Id) == false) continue;
            // A node that skipped the index by a snapshot holds the agreed entry (checked on install).
            var entry = node.AppliedLog[(int)index - 1] ?? applied[(int)index - 1];
            if (entry.Data.AsSpan().SequenceEqual(data)) count++;
        }
        return count;
    }

    /// <summary>The course suite's one(): submit a command at the leader and wait until
    /// <paramref name="expected"/> nodes applied it; retries while leadership moves. Returns its
    /// index, or -1 on timeout. With <paramref name="members"/>, the members of the current leader's
    /// configuration must all apply it instead (<paramref name="expected"/> is then ignored).</summary>
    public long One(byte[] command, int expected, int maxTicks = 200, bool retry = true, bool members = false)
    {
        long deadline = Now + TicksToSteps(maxTicks);
        while (Now < deadline)
        {
            long index = -1;
            int leader = Leader();
            if (leader >= 0)
            {
                // Straight to the leader's core: no client waits for this one.
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
                    if (members ? LeaderConfiguration() is { } among && CountApplied(index, command, among) >= among.Count
                        : CountApplied(index, command) >= expected) return index;
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

    /// <summary>The state-machine command that sets key <paramref name="key"/> to <paramref name="value"/> (as the client service encodes a Set).</summary>
    public static byte[] Command(int key, int value) =>
        RaftServer.StateMachine.Command.EncodePut(0, 0, 0, Key(key), Bytes(value));

    public static byte[] Bytes(int value) => System.Text.Encoding.UTF8.GetBytes(value.ToString(System.Globalization.CultureInfo.InvariantCulture));

    public static string Key(int key) => key.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Key and value of a write to a numbered key (<see cref="Command"/>, the clients'); null for anything else.</summary>
    public static (int Key, int Value)? Decode(Entry entry)
    {
        if (entry.Kind != EntryKind.Command || !RaftServer.StateMachine.Command.TryDecode(entry.Data, out var c)) return null;
        if (c.Op is not (CommandOp.Put or CommandOp.Set)) return null;
        var invariant = System.Globalization.CultureInfo.InvariantCulture;
        return int.TryParse(c.Key, System.Globalization.NumberStyles.None, invariant, out var key) && int.TryParse(c.Value, System.Globalization.NumberStyles.None, invariant, out var value)
            ? (key, value)
            : null;
    }
}

internal sealed class SimulationFailure(int seed, string problem) : Exception($"seed {seed}: {problem}")
{
    /// <summary>Set RAFTPS_TRACE=1 to print every delivery and role change (with RAFTPS_SEED).</summary>
    public Action<string>? Trace { get; set; } =
        Environment.GetEnvironmentVariable("RAFTPS_TRACE") == "1" ? Console.WriteLine : null;

    public int Seed { get; } = seed;
}
