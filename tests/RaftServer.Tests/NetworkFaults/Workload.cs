using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using RaftPS.Protocol;
using RaftServer.Tests.Consensus.Simulation;

namespace RaftServer.Tests.NetworkFaults;

/// <summary>How one recorded operation ended.</summary>
internal enum OpOutcome
{
    /// <summary>Acknowledged (a write) or answered (a read).</summary>
    Ok,
    /// <summary>Certainly without effect: a read that got no answer, a write refused before it was proposed.</summary>
    Failed,
    /// <summary>A write given up on: it may have taken effect at any time after its call, or never.</summary>
    Unknown,
}

/// <summary>One client operation as the history records it: times in microseconds of the test's clock.</summary>
internal sealed record RecordedOp(int Client, bool IsWrite, int Key, int Value, long Call, long Return, OpOutcome Outcome, int Attempts)
{
    /// <summary>As the linearizability checker takes it: an unknown write is pending forever (<see cref="RecordedHistory.ForChecker"/> leaves failed operations out).</summary>
    public Operation ToOperation() => new(Client, IsWrite, Key, Value, Call, Outcome == OpOutcome.Unknown ? Operation.Pending : Return);
}

internal static class RecordedHistory
{
    /// <summary>The history as the linearizability checker takes it: operations certainly without effect are left out.</summary>
    public static IEnumerable<Operation> ForChecker(this IEnumerable<RecordedOp> history) =>
        history.Where(o => o.Outcome != OpOutcome.Failed).Select(o => o.ToOperation());

    /// <summary>
    /// The checks every checked-history test ends with, on a history that ends with final reads
    /// (client -1): no acknowledged write lost, and linearizable. Adds what fails to
    /// <paramref name="problems"/>; returns a line counting the operations by outcome.
    /// </summary>
    public static string Check(IReadOnlyList<RecordedOp> history, List<string> problems)
    {
        CheckNoAcknowledgedWriteLost(history, problems);
        if (!LinearizabilityChecker.IsLinearizable(history.ForChecker(), out var why))
            problems.Add($"the history is not linearizable: {(why!.Length > 4000 ? why[..4000] + " ..." : why)}");
        return $"{history.Count} operations: {history.Count(o => o.Outcome == OpOutcome.Ok)} done, " +
            $"{history.Count(o => o.Outcome == OpOutcome.Failed)} failed, {history.Count(o => o.Outcome == OpOutcome.Unknown)} unknown";
    }

    /// <summary>
    /// The last acknowledged write of each key (by return time) that no later write could have
    /// overwritten must be what the final read saw: a cheap, readable check beside the checker's.
    /// </summary>
    private static void CheckNoAcknowledgedWriteLost(IReadOnlyList<RecordedOp> history, List<string> problems)
    {
        foreach (var finalRead in history.Where(o => o.Client == -1))
        {
            var writes = history.Where(o => o.IsWrite && o.Key == finalRead.Key && o.Outcome != OpOutcome.Failed).ToList();
            var lastAcked = writes.Where(o => o.Outcome == OpOutcome.Ok).MaxBy(o => o.Return);
            if (lastAcked is null) continue;
            // Writes that may have landed after it: any not acknowledged before it was called.
            var candidates = writes.Where(o => o == lastAcked || o.Outcome == OpOutcome.Unknown || o.Return > lastAcked.Call).Select(o => o.Value).ToHashSet();
            if (!candidates.Contains(finalRead.Value))
                problems.Add($"key {finalRead.Key}: the final read saw {finalRead.Value}, not the acknowledged write {lastAcked.Value} or a later one");
        }
    }
}

/// <summary>
/// Concurrent clients that read and write a few keys (registers of ints) through any node and
/// record every operation with its call and return times. Each client starts at its own node;
/// an attempt that fails or passes <see cref="AttemptTimeout"/> moves on: to the leader the node
/// named, else to the next node. A write keeps its client id and sequence number on every
/// attempt (the server applies it once), so all its attempts are one operation; after
/// <see cref="OperationTimeout"/> it is given up and recorded as unknown.
/// </summary>
internal sealed class Workload : IAsyncDisposable
{
    /// <summary>A client stuck on an impaired node moves on after this long.</summary>
    public static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan OperationTimeout = TimeSpan.FromSeconds(10);

    private readonly LabCluster _cluster;
    private readonly int _keys;
    private readonly List<RecordedOp> _history = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _clients = new();
    private readonly List<GrpcChannel> _channels = new();
    private static readonly Stopwatch Clock = Stopwatch.StartNew();

    /// <summary>The test's clock, in microseconds: every time in a history and in a fault's record.</summary>
    public static long NowUs => Clock.ElapsedTicks * 1_000_000 / Stopwatch.Frequency;

    public Workload(LabCluster cluster, int clients, int keys, int seed)
    {
        _cluster = cluster;
        _keys = keys;
        for (var c = 0; c < clients; c++)
        {
            // Each client its own connections, as separate client processes would have.
            var channels = cluster.Ids.Select(cluster.Channel).ToArray();
            _channels.AddRange(channels);
            var client = c;
            _clients.Add(Task.Run(() => RunClient(client, channels, new Random(seed * 1000 + client))));
        }
    }

    public IReadOnlyList<RecordedOp> History
    {
        get { lock (_history) return _history.ToList(); }
    }

    /// <summary>Stops the clients (an operation in flight ends as it would on a timeout) and returns the history.</summary>
    public async Task<IReadOnlyList<RecordedOp>> StopAsync()
    {
        _stop.Cancel();
        await Task.WhenAll(_clients);
        return History;
    }

    private async Task RunClient(int client, GrpcChannel[] channels, Random random)
    {
        var clients = channels.Select(ch => new RaftClient.RaftClientClient(ch)).ToArray();
        var home = client % clients.Length;
        var clientId = (ulong)(client + 1);
        ulong sequence = 0;
        var written = 0;
        while (!_stop.IsCancellationRequested)
        {
            var key = random.Next(_keys);
            var isWrite = random.Next(2) == 0;
            var value = isWrite ? (client + 1) * 1_000_000 + ++written : 0;
            if (isWrite) sequence++;
            var op = await RunOperation(clients, home, client, clientId, sequence, isWrite, key, value);
            if (op is not null)
                lock (_history) _history.Add(op);
            // A little think time: the point is the faults, not the throughput (2 shared cores).
            try { await Task.Delay(random.Next(1, 6), _stop.Token); } catch (OperationCanceledException) { }
        }
    }

    private async Task<RecordedOp?> RunOperation(RaftClient.RaftClientClient[] clients, int home, int client, ulong clientId, ulong sequence,
        bool isWrite, int key, int value)
    {
        var call = NowUs;
        var started = Stopwatch.StartNew();
        var target = home;
        var attempts = 0;
        var triedThisRound = new HashSet<int>();
        while (started.Elapsed < OperationTimeout)
        {
            if (_stop.IsCancellationRequested && attempts > 0) break;
            attempts++;
            var budget = OperationTimeout - started.Elapsed;
            if (budget > AttemptTimeout) budget = AttemptTimeout;
            try
            {
                var options = new CallOptions(deadline: DateTime.UtcNow + budget);
                if (isWrite)
                {
                    await clients[target].SetAsync(new SetRequest
                    {
                        Key = KeyName(key), Value = ByteString.CopyFromUtf8(value.ToString()), ClientId = clientId, Sequence = sequence,
                    }, options);
                    return new RecordedOp(client, true, key, value, call, NowUs, OpOutcome.Ok, attempts);
                }
                var reply = await clients[target].GetAsync(new GetRequest { Key = KeyName(key) }, options);
                var read = reply.Found ? int.Parse(reply.Value.ToStringUtf8()) : 0;
                return new RecordedOp(client, false, key, read, call, NowUs, OpOutcome.Ok, attempts);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.ResourceExhausted)
            {
                // Refused before it was proposed (the NOSPACE alarm, admission control): this attempt had
                // no effect. An earlier attempt of the same write that ended without an answer may have.
                var outcome = isWrite && attempts > 1 ? OpOutcome.Unknown : OpOutcome.Failed;
                return new RecordedOp(client, isWrite, key, isWrite ? value : 0, call, NowUs, outcome, attempts);
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Cancelled
                                             or StatusCode.Aborted or StatusCode.Internal)
            {
                triedThisRound.Add(target);
                var hint = LeaderHint(e.Trailers);
                target = hint is { } leader && leader != target && !triedThisRound.Contains(leader) ? leader : NextNode(target, clients.Length);
                if (triedThisRound.Count >= clients.Length)
                {
                    triedThisRound.Clear();
                    try { await Task.Delay(20, _stop.Token); } catch (OperationCanceledException) { }
                }
            }
        }
        // Given up: a read certainly changed nothing; a write may yet take effect.
        return isWrite
            ? new RecordedOp(client, true, key, value, call, NowUs, OpOutcome.Unknown, attempts)
            : new RecordedOp(client, false, key, 0, call, NowUs, OpOutcome.Failed, attempts);
    }

    private static int NextNode(int node, int count) => (node + 1) % count;

    public static string KeyName(int key) => $"nf/{key}";

    /// <summary>The node id of a "raftps-leader" trailer ("&lt;id&gt; host:port").</summary>
    public static int? LeaderHint(Metadata? trailers)
    {
        var text = trailers?.GetValue("raftps-leader");
        if (string.IsNullOrWhiteSpace(text)) return null;
        var space = text.IndexOf(' ');
        return int.TryParse(space > 0 ? text[..space] : text, out var id) ? id : null;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested) await StopAsync();
        foreach (var ch in _channels) ch.Dispose();
        _stop.Dispose();
    }
}
