using System.Text;
using RaftServer.Hosting;
using RaftServer.StateMachine;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>A simulated watch client: a key or prefix, the node it reads from, and everything it saw.</summary>
internal sealed class SimWatcher(int id, string key, bool prefix)
{
    public int Id { get; } = id;
    public string Key { get; } = key;
    public bool Prefix { get; } = prefix;
    public int Node = -1;
    public int Incarnation;
    public Watcher? Stream;
    /// <summary>Every event received, in the order received.</summary>
    public readonly List<(long Revision, KvEventKind Kind, string Key, string Value)> Seen = new();
    /// <summary>Every matching event up to this revision has been received (in the current segment).</summary>
    public long Through;
    /// <summary>Where the current stretch of continuous history began: after a compaction the client
    /// re-reads the state and starts a new one.</summary>
    public long SegmentStart = 1;
    public readonly List<(long From, long To)> Segments = new();
    public int Reconnects;
    public int Compactions;

    public bool Matches(string key) => Prefix ? key.StartsWith(Key, StringComparison.Ordinal) : key == Key;
}

/// <summary>
/// Watch clients on the simulated nodes' windows (<see cref="WatchHub"/>, fed by each node's
/// driver as it applies): they read at random paces, lose their stream when their node crashes
/// or at random, and resume on any live node from the last revision they saw + 1. At the end
/// every stretch of each client's stream must equal the agreed log's changes of its keys over
/// that stretch: in revision order, no gap, no duplicate (<see cref="CheckWatchers"/>).
/// </summary>
internal sealed partial class Simulation
{
    private readonly List<SimWatcher> watchers = new();

    public IReadOnlyList<SimWatcher> Watchers => watchers;

    /// <summary>Watchers of random keys and prefixes ("" = every key).</summary>
    public void AddWatchers(int count)
    {
        for (var i = 0; i < count; i++)
        {
            var w = random.Next(3) switch
            {
                0 => new SimWatcher(watchers.Count, "", prefix: true),
                1 => new SimWatcher(watchers.Count, Key(1 + random.Next(Keys)), prefix: false),
                _ => new SimWatcher(watchers.Count, "L", prefix: true), // the lease clients' keys
            };
            watchers.Add(w);
        }
    }

    private void RunWatchers()
    {
        foreach (var w in watchers)
        {
            if (w.Stream is { } stream && (!Nodes[w.Node].Alive || Nodes[w.Node].Incarnation != w.Incarnation || random.Next(500) == 0))
                Disconnect(w); // the node crashed (its stream broke) or the client reconnects for no reason
            if (w.Stream is null)
            {
                if (random.Next(4) == 0) Connect(w);
                continue;
            }
            if (Nodes[w.Node].IsPaused(Now) || random.Next(3) == 0) continue; // a stalled stream, a slow reader
            var events = new List<WatchedEvent>();
            var read = w.Stream.Read(events, maxEvents: 1 + random.Next(5));
            if (read.Status == WatchReadStatus.Lost)
            {
                Trace?.Invoke($"{Now} watcher {w.Id} lost its place on node {w.Node} (compacted {read.CompactedRevision})");
                Disconnect(w);
                continue;
            }
            foreach (var e in events)
            {
                var item = e.Change.Item;
                w.Seen.Add((e.Revision, e.Change.Kind, item.Key, Encoding.UTF8.GetString(item.Value.Span)));
            }
            w.Through = w.Stream.NextRevision - 1;
        }
    }

    private static void Disconnect(SimWatcher w)
    {
        w.Stream?.Dispose();
        w.Stream = null;
    }

    /// <summary>Resumes on a random live node from the last revision seen + 1; when every live
    /// node has compacted that revision away, the client starts a new stretch where one begins.</summary>
    private void Connect(SimWatcher w)
    {
        var live = Nodes.Where(n => n.Alive && !n.IsPaused(Now)).OrderBy(_ => random.Next()).ToList();
        if (live.Count == 0) return;
        long compactedEverywhere = long.MaxValue;
        foreach (var node in live)
        {
            var hub = node.Driver!.Watches!;
            try
            {
                w.Stream = hub.Open(w.Key, w.Prefix, w.Through + 1);
                w.Node = node.Id;
                w.Incarnation = node.Incarnation;
                w.Reconnects++;
                return;
            }
            catch (WatchCompactedException e)
            {
                compactedEverywhere = Math.Min(compactedEverywhere, e.CompactedRevision);
            }
        }
        // Compacted on every live node: the client would read the state again and watch from there.
        w.Segments.Add((w.SegmentStart, w.Through));
        w.Compactions++;
        w.SegmentStart = compactedEverywhere + 1;
        w.Through = compactedEverywhere;
        Trace?.Invoke($"{Now} watcher {w.Id} restarts after compaction at {w.SegmentStart}");
    }

    /// <summary>Each stretch of each watcher's stream is exactly the agreed changes of its keys over it.</summary>
    private void CheckWatchers()
    {
        foreach (var w in watchers)
        {
            var segments = w.Segments.Append((w.SegmentStart, w.Through)).Where(s => s.Item2 >= s.Item1).ToList();
            var seen = w.Seen;
            for (var i = 1; i < seen.Count; i++)
                if (seen[i].Revision < seen[i - 1].Revision)
                    Fail($"watcher {w.Id} received revision {seen[i].Revision} after {seen[i - 1].Revision}");
            var expected = new List<(long, KvEventKind, string, string)>();
            foreach (var (from, to) in segments)
                expected.AddRange(referenceEvents.Where(e => e.Revision >= from && e.Revision <= to && w.Matches(e.Key)));
            if (!expected.SequenceEqual(seen))
            {
                var at = Enumerable.Range(0, Math.Min(expected.Count, seen.Count)).FirstOrDefault(i => !expected[i].Equals(seen[i]), Math.Min(expected.Count, seen.Count));
                Fail($"watcher {w.Id} ({w.Key}{(w.Prefix ? "*" : "")}, stretches {string.Join(" ", segments.Select(s => $"[{s.Item1},{s.Item2}]"))}) saw {seen.Count} events where the log made {expected.Count}; first difference at {at}: " +
                    $"saw {(at < seen.Count ? seen[at].ToString() : "nothing")}, expected {(at < expected.Count ? expected[at].ToString() : "nothing")}");
            }
        }
    }
}
