using RaftPS.Protocol;

namespace RaftServer.Tests.NetworkFaults;

/// <summary>The faults the nemesis injects.</summary>
internal enum FaultKind
{
    /// <summary>The leader and fewer than half the nodes cut off from the rest, both ways.</summary>
    MinoritySplit,
    /// <summary>The leader cut off from every peer, both ways; clients still reach it.</summary>
    IsolatedLeader,
    /// <summary>Two halves that cannot hear each other and one node that hears both (the leader in a half).</summary>
    Bridge,
    /// <summary>Packets dropped one way only: the leader's to every peer, every peer's to the leader, or one follower's to the leader.</summary>
    OneWay,
    /// <summary>Every node-to-node packet delayed and a share of them lost (user-space relay).</summary>
    DelayLoss,
    /// <summary>The leader killed with SIGKILL, restarted from its data directory at the heal (which counts from when it listens again).</summary>
    KillRestart,
    /// <summary>The leader suspended (the Suspend call) for the length of the fault.</summary>
    Suspend,
}

/// <summary>One fault as it happened: times in microseconds of <see cref="Workload.NowUs"/>.</summary>
internal sealed class FaultRecord(FaultKind kind, string detail)
{
    public FaultKind Kind { get; } = kind;
    public string Detail { get; } = detail;
    public long Start { get; set; }
    public long Heal { get; set; }
    /// <summary>When every node agreed on one leader and a write through each node succeeded again; null if it never did.</summary>
    public long? Converged { get; set; }
    public long End { get; set; }
}

/// <summary>Starts and heals faults on a <see cref="LabCluster"/>.</summary>
internal sealed class Nemesis(LabCluster cluster, Random random)
{
    /// <summary>One-way delay of each node-to-node packet and the share lost, for <see cref="FaultKind.DelayLoss"/>.</summary>
    public static readonly TimeSpan Delay = TimeSpan.FromMilliseconds(40);
    public const double Loss = 0.15;

    private Action? _heal;

    /// <summary>Starts a fault against the current leader; returns what it did.</summary>
    public async Task<FaultRecord> StartAsync(FaultKind kind, int leader, TimeSpan hold)
    {
        var ids = cluster.Ids;
        var others = ids.Where(i => i != leader).OrderBy(_ => random.Next()).ToList();
        FaultRecord record;
        switch (kind)
        {
            case FaultKind.MinoritySplit:
            {
                var minority = new[] { leader }.Concat(others.Take((ids.Count - 1) / 2 - 1)).ToList();
                var majority = ids.Except(minority).ToList();
                record = new FaultRecord(kind, $"{Set(minority)} | {Set(majority)}");
                Cut(Partition(minority, majority));
                break;
            }
            case FaultKind.IsolatedLeader:
                record = new FaultRecord(kind, $"{Set([leader])} | {Set(others)}");
                Cut(Partition([leader], others));
                break;
            case FaultKind.Bridge:
            {
                var bridge = others[0];
                var rest = others.Skip(1).ToList();
                var half = new[] { leader }.Concat(rest.Take((rest.Count - 1) / 2)).ToList();
                var otherHalf = rest.Except(half).ToList();
                record = new FaultRecord(kind, $"{Set(half)} | {Set(otherHalf)}, node {bridge} hears both");
                Cut(Partition(half, otherHalf));
                break;
            }
            case FaultKind.OneWay:
            {
                switch (random.Next(3))
                {
                    case 0:
                        record = new FaultRecord(kind, $"node {leader} (leader) -> all dropped");
                        Cut(others.Select(o => (leader, o)));
                        break;
                    case 1:
                        record = new FaultRecord(kind, $"all -> node {leader} (leader) dropped");
                        Cut(others.Select(o => (o, leader)));
                        break;
                    default:
                        record = new FaultRecord(kind, $"node {others[0]} -> node {leader} (leader) dropped");
                        Cut([(others[0], leader)]);
                        break;
                }
                break;
            }
            case FaultKind.DelayLoss:
                record = new FaultRecord(kind, $"{Delay.TotalMilliseconds:0} ms each way, {Loss:P0} loss, every node-to-node link");
                cluster.Relay.Start(Delay, Loss, random.Next());
                _heal = cluster.Relay.Stop;
                break;
            case FaultKind.KillRestart:
                record = new FaultRecord(kind, $"kill -9 node {leader} (leader), restart at the heal");
                cluster.Kill(leader);
                _heal = () => cluster.Start(leader);
                _restarted = leader;
                break;
            case FaultKind.Suspend:
                record = new FaultRecord(kind, $"node {leader} (leader) suspended for {hold.TotalSeconds:0.#} s");
                await cluster.Admin(leader).SuspendAsync(new SuspendRequest { Seconds = hold.TotalSeconds },
                    deadline: DateTime.UtcNow.AddSeconds(2));
                _heal = () => { }; // it resumes by itself
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind));
        }
        record.Start = Workload.NowUs;
        return record;
    }

    /// <summary>
    /// Heals the fault. A killed node's heal is the moment its restarted process listens again, not
    /// the restart: how long a process takes to start is not what the test measures.
    /// </summary>
    public async Task HealAsync(FaultRecord record)
    {
        _heal?.Invoke();
        _heal = null;
        if (_restarted is { } node)
        {
            _restarted = null;
            if (!await cluster.Process(node).WaitForOutput("The server starts at", LabCluster.Patience))
                throw new TimeoutException($"node {node} did not start again within {LabCluster.Patience}\n{cluster.Outputs()}");
        }
        record.Heal = Workload.NowUs;
    }

    private int? _restarted;

    private void Cut(IEnumerable<(int From, int To)> drops)
    {
        cluster.Lab.ApplyDrops(drops);
        _heal = () => cluster.Lab.ApplyDrops([]);
    }

    /// <summary>Both directions between every node of one side and every node of the other.</summary>
    private static IEnumerable<(int, int)> Partition(IReadOnlyList<int> a, IReadOnlyList<int> b) =>
        a.SelectMany(x => b.SelectMany(y => new[] { (x, y), (y, x) }));

    private static string Set(IEnumerable<int> nodes) => "{" + string.Join(",", nodes.Order()) + "}";
}
