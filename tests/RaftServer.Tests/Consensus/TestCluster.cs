using RaftServer.Consensus;

namespace RaftServer.Tests.Consensus;

/// <summary>
/// A tiny synchronous driver for unit tests: nodes exchange messages through a FIFO in-memory
/// network with optional cut links; each node's Ready is handled like the real driver does
/// (persist, send, apply, Advance).
/// </summary>
internal sealed class TestCluster
{
    public readonly Dictionary<int, RaftNode> Nodes = new();
    public readonly Dictionary<int, List<Entry>> Applied = new();
    public readonly Dictionary<int, List<ReadState>> Reads = new();
    public readonly Dictionary<int, List<Entry>> Persisted = new();
    public readonly Dictionary<int, HardState> HardStates = new();
    public readonly HashSet<(int From, int To)> Cut = new();
    public readonly Queue<Message> InFlight = new();
    private readonly int[] ids;

    public TestCluster(int size, int seed = 1, Func<RaftOptions, RaftOptions>? configure = null)
    {
        ids = Enumerable.Range(0, size).ToArray();
        var random = new Random(seed);
        foreach (int id in ids)
        {
            var options = new RaftOptions { Id = id, Members = ids, Random = new Random(random.Next()) };
            if (configure is not null) options = configure(options);
            Nodes[id] = new RaftNode(options, PersistedState.Empty);
            Applied[id] = new();
            Reads[id] = new();
            Persisted[id] = new();
            HardStates[id] = HardState.Empty;
        }
    }

    public RaftNode this[int id] => Nodes[id];

    public void Isolate(int id)
    {
        foreach (int other in ids)
        {
            if (other == id) continue;
            Cut.Add((id, other));
            Cut.Add((other, id));
        }
    }

    public void Heal() => Cut.Clear();

    /// <summary>Handle every Ready and deliver every message until nothing moves.</summary>
    public void Settle(int maxMessages = 100_000)
    {
        int delivered = 0;
        while (true)
        {
            foreach (int id in ids) Drain(id);
            if (InFlight.Count == 0) return;
            var message = InFlight.Dequeue();
            if (++delivered > maxMessages) throw new InvalidOperationException("the cluster never settles");
            if (Cut.Contains((message.From, message.To))) continue;
            Nodes[message.To].Step(message);
        }
    }

    public void Drain(int id)
    {
        var node = Nodes[id];
        while (node.HasReady)
        {
            var ready = node.GetReady();
            if (ready.HardState is { } hs) HardStates[id] = hs;
            var log = Persisted[id];
            foreach (var entry in ready.Entries)
            {
                int at = (int)entry.Index - 1;
                if (at < log.Count) log.RemoveRange(at, log.Count - at);
                log.Add(entry);
            }
            foreach (var message in ready.Messages) InFlight.Enqueue(message);
            Applied[id].AddRange(ready.CommittedEntries);
            Reads[id].AddRange(ready.ReadStates);
            node.Advance(ready);
        }
    }

    public void TickAll(int ticks = 1)
    {
        for (int t = 0; t < ticks; t++)
        {
            foreach (int id in ids) Nodes[id].Tick();
            Settle();
        }
    }

    /// <summary>Ticks only <paramref name="id"/> until it campaigns (and the cluster settles).</summary>
    public void Campaign(int id)
    {
        var node = Nodes[id];
        for (int i = 0; i < 1000 && node.Role is Role.Follower; i++) node.Tick();
        Settle();
    }

    public int? Leader()
    {
        var leaders = Nodes.Values.Where(n => n.Role == Role.Leader).GroupBy(n => n.Term).OrderByDescending(g => g.Key).FirstOrDefault();
        return leaders?.Single().Id;
    }

    public static byte[] Bytes(string text) => System.Text.Encoding.UTF8.GetBytes(text);
    public static string Text(Entry entry) => System.Text.Encoding.UTF8.GetString(entry.Data);
}
