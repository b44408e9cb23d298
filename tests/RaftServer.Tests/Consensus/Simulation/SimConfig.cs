using RaftServer.Consensus;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>The knobs of one simulated run. Times are in simulation steps; a node ticks every
/// <see cref="StepsPerTick"/> steps.</summary>
internal sealed record SimConfig
{
    public int Nodes { get; init; } = 3;
    public int ElectionTicks { get; init; } = 10;
    public int HeartbeatTicks { get; init; } = 1;
    public int StepsPerTick { get; init; } = 10;
    public bool PreVote { get; init; } = true;
    public bool CheckQuorum { get; init; } = true;
    public int MaxInflightAppends { get; init; } = 8;
    /// <summary>Small, so that batching splits the log into several messages.</summary>
    public long MaxAppendBytes { get; init; } = 64;

    /// <summary>Probability that a message is dropped.</summary>
    public double Loss { get; init; }
    /// <summary>Probability that a message is delivered twice.</summary>
    public double Duplicate { get; init; }
    /// <summary>Delivery delay, uniform in [MinDelay, MaxDelay] steps; a wide range reorders.</summary>
    public int MinDelay { get; init; } = 1;
    public int MaxDelay { get; init; } = 3;
    /// <summary>Probability, per Ready, that the node crashes right after persisting it and before
    /// sending its messages (only while crashes are being injected).</summary>
    public double CrashAfterPersist { get; init; }

    /// <summary>Each node snapshots its state machine and compacts its log every this many applied
    /// entries (0: never).</summary>
    public int SnapshotEvery { get; init; }
    /// <summary>Probability that a snapshot transfer fails (on top of <see cref="Loss"/>).</summary>
    public double SnapshotFailure { get; init; }
    /// <summary>Probability that a failed transfer is never reported to the leader's core (it
    /// must then time out); otherwise the driver reports it with ReportSnapshot(peer, false).</summary>
    public double SilentSnapshotFailure { get; init; } = 0.5;
    /// <summary>RaftOptions.SnapshotTimeoutTicks (0: the core's default).</summary>
    public int SnapshotTimeoutTicks { get; init; }
    /// <summary>Probability, per Ready that installs a snapshot, that the node crashes after saving
    /// the snapshot and before discarding its old log (restart must then repair the log).</summary>
    public double CrashMidInstall { get; init; }
    /// <summary>Extra delay of a snapshot transfer over a message, uniform in [0, this] steps.</summary>
    public int SnapshotTransferSteps { get; init; } = 30;

    /// <summary>When a node crashes, every other live node is told at once that it is gone
    /// (<see cref="RaftNode.LeaderUnreachable"/>), as the server's transport does when a peer's
    /// port refuses connections after a kill.</summary>
    public bool HintOnCrash { get; init; }

    /// <summary>How many of the nodes bootstrap the cluster as its voters (0: all of them). The
    /// others start knowing no configuration, as a node started with --join does, and take part
    /// once a membership change adds them.</summary>
    public int InitialVoters { get; init; }

    /// <summary>Each node's window of history for watchers, in changes (small ones make watchers
    /// fall out of it and resume elsewhere or start over).</summary>
    public int WatchWindow { get; init; } = 4096;

    public static SimConfig Reliable(int nodes) => new() { Nodes = nodes };

    public static SimConfig Unreliable(int nodes) => new()
    {
        Nodes = nodes, Loss = 0.1, Duplicate = 0.05, MinDelay = 1, MaxDelay = 25,
    };
}
