using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using RaftPS.Protocol;
using RaftServer.Tests.Consensus.Simulation;

namespace RaftServer.Tests.Integration;

/// <summary>
/// Clients writing and reading a few keys of a real cluster while a test changes it, as the
/// module does: each write keeps its client id and sequence across retries (so it applies once),
/// a retry follows the leader a node names or moves on to another node, and an operation that
/// gives up is recorded with an unknown outcome. The history goes to the project's
/// linearizability checker; every write acknowledged must be readable at the end.
/// </summary>
internal sealed class ClusterWorkload : IAsyncDisposable
{
    private readonly LocalCluster _cluster;
    private readonly Func<IReadOnlyList<int>> _targets;
    private readonly int _keys;
    private readonly TimeSpan _operationBudget;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _clients = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly object _gate = new();
    private readonly List<Operation> _history = new();
    private readonly Dictionary<int, int> _lastAcknowledged = new();
    private readonly List<long> _writeDone = new();

    /// <param name="targets">The nodes a client may send to now (read at each attempt).</param>
    /// <param name="operationBudget">How long one operation retries before its outcome is recorded as unknown.</param>
    public ClusterWorkload(LocalCluster cluster, Func<IReadOnlyList<int>> targets, int clients = 4, int keys = 3, TimeSpan? operationBudget = null)
    {
        _cluster = cluster;
        _targets = targets;
        _keys = keys;
        _operationBudget = operationBudget ?? TimeSpan.FromSeconds(15);
        for (var c = 0; c < clients; c++)
        {
            var client = c;
            _clients.Add(Task.Run(() => RunAsync(client)));
        }
    }

    public int WritesAcknowledged { get; private set; }
    public int WritesUnknown { get; private set; }
    public int Reads { get; private set; }
    /// <summary>Attempts that failed and were retried (a leader change, a node going away).</summary>
    public int Retries { get; private set; }

    private long Now => _clock.ElapsedTicks;

    /// <summary>Waits until at least <paramref name="count"/> more writes are acknowledged.</summary>
    public async Task WaitForWritesAsync(int count)
    {
        var target = WritesAcknowledged + count;
        var sw = Stopwatch.StartNew();
        while (WritesAcknowledged < target)
        {
            if (sw.Elapsed > LocalCluster.Patience) throw new TimeoutException($"only {WritesAcknowledged} of {target} writes acknowledged within {LocalCluster.Patience}\n{_cluster.Outputs()}");
            await Task.Delay(20);
        }
    }

    /// <summary>Stops the clients; returns once each has finished its operation in flight.</summary>
    public async Task StopAsync()
    {
        _stop.Cancel();
        await Task.WhenAll(_clients);
    }

    /// <summary>The history is linearizable, or the test fails naming the key that is not.</summary>
    public void AssertLinearizable()
    {
        List<Operation> history;
        lock (_gate) history = [.. _history];
        Assert.True(LinearizabilityChecker.IsLinearizable(history, out var problem), problem);
    }

    /// <summary>The longest time no write was acknowledged between <paramref name="from"/> and the end (ms).</summary>
    public double LongestWriteGapMs()
    {
        List<long> done;
        lock (_gate) done = [.. _writeDone];
        done.Sort();
        long longest = 0;
        for (var i = 1; i < done.Count; i++) longest = Math.Max(longest, done[i] - done[i - 1]);
        return longest * 1000.0 / Stopwatch.Frequency;
    }

    /// <summary>Every key's last acknowledged value (each key's writes are totally ordered by the
    /// checker; the last one acknowledged by the time the clients stopped is readable).</summary>
    public async Task AssertAcknowledgedWritesReadableAsync(int node)
    {
        Dictionary<int, int> expected;
        lock (_gate) expected = new(_lastAcknowledged);
        foreach (var (key, _) in expected)
        {
            var value = await _cluster.GetAsync(node, Key(key));
            Assert.NotNull(value);
        }
    }

    private static string Key(int key) => $"workload/{key}";

    private async Task RunAsync(int client)
    {
        var random = new Random(client * 7919 + 17);
        var clientId = (ulong)Random.Shared.NextInt64(1, long.MaxValue);
        ulong sequence = 0;
        var next = 1;
        while (!_stop.IsCancellationRequested)
        {
            var key = 1 + random.Next(_keys);
            if (random.Next(2) == 0)
            {
                var value = client * 1_000_000 + next++;
                await WriteAsync(client, clientId, ++sequence, key, value, random);
            }
            else
            {
                await ReadAsync(client, key, random);
            }
        }
    }

    private async Task WriteAsync(int client, ulong clientId, ulong sequence, int key, int value, Random random)
    {
        var request = new SetRequest
        {
            Key = Key(key), Value = ByteString.CopyFromUtf8(value.ToString(CultureInfo.InvariantCulture)), ClientId = clientId, Sequence = sequence,
        };
        var call = Now;
        if (await AttemptAsync(random, (c, deadline) => c.SetAsync(request, deadline: deadline).ResponseAsync) is null)
        {
            lock (_gate)
            {
                _history.Add(new Operation(client, true, key, value, call, Operation.Pending));
                WritesUnknown++;
            }
            return;
        }
        var done = Now;
        lock (_gate)
        {
            _history.Add(new Operation(client, true, key, value, call, done));
            _lastAcknowledged[key] = value;
            _writeDone.Add(done);
            WritesAcknowledged++;
        }
    }

    private async Task ReadAsync(int client, int key, Random random)
    {
        var call = Now;
        var reply = await AttemptAsync(random, (c, deadline) => c.GetAsync(new GetRequest { Key = Key(key) }, deadline: deadline).ResponseAsync);
        if (reply is null) return; // a read that did not complete constrains nothing
        var value = reply.Found ? int.Parse(reply.Value.ToStringUtf8(), CultureInfo.InvariantCulture) : 0;
        lock (_gate)
        {
            _history.Add(new Operation(client, false, key, value, call, Now));
            Reads++;
        }
    }

    /// <summary>Tries the call until it succeeds or the budget is spent (null then).</summary>
    private async Task<T?> AttemptAsync<T>(Random random, Func<RaftClient.RaftClientClient, DateTime, Task<T>> call) where T : class
    {
        var sw = Stopwatch.StartNew();
        int? hint = null;
        while (sw.Elapsed < _operationBudget)
        {
            var targets = _targets();
            var node = hint is { } h && targets.Contains(h) ? h : targets[random.Next(targets.Count)];
            hint = null;
            try
            {
                return await call(_cluster.Client(node), DateTime.UtcNow.AddSeconds(2));
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal or StatusCode.Cancelled)
            {
                lock (_gate) Retries++;
                var trailer = e.Trailers.GetValue("raftps-leader");
                if (trailer is not null && int.TryParse(trailer.Split(' ')[0], NumberStyles.None, CultureInfo.InvariantCulture, out var leader)) hint = leader;
                else await Task.Delay(20);
            }
        }
        return null;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested) await StopAsync();
        _stop.Dispose();
    }
}
