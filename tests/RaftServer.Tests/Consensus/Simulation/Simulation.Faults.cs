using Microsoft.Extensions.Logging.Abstractions;
using RaftServer.Cluster;
using RaftServer.Consensus;
using RaftServer.Hosting;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>Faults the scenarios inject: partitions, crashes, restarts, pauses.</summary>
internal sealed partial class Simulation
{
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
        ForgetLeadershipNobodySaw(node);
        node.LoseVolatileState();
        FailClientsOn(id);
        if (!Config.HintOnCrash) return;
        foreach (var other in Nodes)
            if (other.Alive && !other.IsPaused(Now)) TellLeaderGone(other.Id, id);
    }

    /// <summary>The driver's hint to <paramref name="to"/> that <paramref name="gone"/>'s process
    /// is gone; true or not (a wrong hint must cost liveness at most, never safety).</summary>
    public void TellLeaderGone(int to, int gone)
    {
        var node = Nodes[to];
        if (node.Driver is not { } driver) return;
        Trace?.Invoke($"{Now} node {to} is told node {gone} is gone");
        driver.Handle(new PeerUnreachable(gone));
        Observe(node);
    }

    public void Restart(int id)
    {
        var node = Nodes[id];
        if (node.Alive) Crash(id);
        Start(node);
    }

    /// <summary>Asks node <paramref name="at"/>'s driver for a membership change, as the client
    /// service does (refused unless it leads, one change at a time, ...).</summary>
    public void ChangeMembership(int at, ChangeKind kind, int id)
    {
        var node = Nodes[at];
        if (node.Driver is not { } driver || node.IsPaused(Now)) return;
        Trace?.Invoke($"{Now} node {at} is asked to {kind} node {id}");
        driver.Handle(new MemberChangeRequested(kind, id, "sim", 1 + id));
        MembershipRequests++;
        HandleReady(node);
    }

    /// <summary>Asks node <paramref name="at"/>'s driver to hand leadership to <paramref name="target"/>.</summary>
    public void TransferLeadership(int at, int? target)
    {
        var node = Nodes[at];
        if (node.Driver is not { } driver || node.IsPaused(Now)) return;
        Trace?.Invoke($"{Now} node {at} is asked to hand leadership to {target?.ToString() ?? "anyone"}");
        driver.Handle(new TransferRequested(target));
        HandleReady(node);
    }

    public int MembershipRequests { get; private set; }

    /// <summary>Replaces a node's machine: everything it had on disk is gone, and it starts again
    /// as a node that joins (it must be added to the configuration to take part).</summary>
    public void Wipe(int id)
    {
        var node = Nodes[id];
        Crash(id);
        node.WipeDisk();
        node.Joins = true;
        Start(node);
    }

    /// <summary>Freezes a node (a long GC or VM pause): it neither ticks nor handles messages;
    /// messages sent to it wait until it resumes.</summary>
    public void Pause(int id, long steps) => Nodes[id].PausedUntil = Now + steps;

    /// <summary>The simulated nodes as a membership (addresses are never dialled).</summary>
    private Membership MembershipOf(int self) =>
        new(self, new MemberSet(Nodes.Select(n => new Member(new NodeAddress(n.Id, "sim", 1 + n.Id)))));

    /// <summary>Starts (or restarts) a node from what it persisted: the server's driver with the
    /// simulated disk and network, the state machine from its durable snapshot.</summary>
    /// <summary>The configuration the cluster bootstraps with: the first InitialVoters nodes (all by default).</summary>
    public Configuration BootstrapConfiguration => new(Enumerable.Range(0, Config.InitialVoters > 0 ? Config.InitialVoters : Nodes.Length)
        .Select(id => new ConfigMember(id, MemberRole.Voter, "sim", 1 + id)));

    private void Start(SimNode node)
    {
        var bootstrap = BootstrapConfiguration;
        var options = new RaftOptions
        {
            Id = node.Id,
            // A node outside the bootstrap configuration, or one wiped to be added anew, joins: it
            // knows no configuration until the leader's log or snapshot gives it one.
            Bootstrap = bootstrap.Contains(node.Id) && !node.Joins ? bootstrap : Configuration.Empty,
            PersistBootstrapConfiguration = Config.InitialVoters > 0,
            ElectionTicks = Config.ElectionTicks,
            HeartbeatTicks = Config.HeartbeatTicks,
            PreVote = Config.PreVote,
            CheckQuorum = Config.CheckQuorum,
            MaxInflightAppends = Config.MaxInflightAppends,
            MaxAppendBytes = Config.MaxAppendBytes,
            SnapshotTimeoutTicks = Config.SnapshotTimeoutTicks,
            Random = new Random(random.Next()),
        };
        node.Incarnation++;
        var persisted = node.Persisted();
        var state = new RaftServer.StateMachine.KvStore();
        if (node.Snapshot is { } snapshot)
        {
            CheckSnapshotState(node, snapshot, "loaded");
            state = node.LoadSnapshot(snapshot);
        }
        var ports = new SimPorts(this, node);
        node.Membership = MembershipOf(node.Id);
        var driver = new RaftDriver(() => options, node.Membership, node, ports, ports, ports,
            () => throw new InvalidOperationException("the simulation does not suspend nodes"),
            new DriverTimeouts(ReadTicks: 4L * Config.ElectionTicks, WriteTicks: 8L * Config.ElectionTicks),
            () => Now, NullLogger.Instance);
        driver.EntryApplied = (entry, _) => OnApplied(node, entry);
        // As the server's SnapshotCoordinator.Restarted does: a node that knows no cluster id and
        // recovers from a leader's snapshot (it crashed before installing it) takes the id that came with it.
        if (node.DurableClusterId == ClusterIdentity.Unknown && node.Snapshot is { ClusterId: not ClusterIdentity.Unknown } recoveredFrom)
            node.DurableClusterId = recoveredFrom.ClusterId;
        // As the server does: leaders propose cluster ids until one commits; every node adopts
        // the first committed one (checked by CheckClusterIds).
        driver.ClusterId = new ClusterIdKeeper(new ClusterIdentity(node.DurableClusterId, id => node.DurableClusterId = id), NullLogger.Instance);
        // A new window per incarnation, as a restarted process has (wake-ups run inline).
        driver.Watches = new WatchHub(Config.WatchWindow, schedule: static a => a());
        driver.Start(new RecoveredNode(persisted, state, null));
        node.Driver = driver;
        node.LastRole = Role.Follower;
        node.LastTerm = driver.Node.Term;
        // Nodes tick out of phase, as real timers do.
        node.TickPhase = random.Next(Config.StepsPerTick);
        HandleReady(node);
    }
}
