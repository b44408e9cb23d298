extern alias bench;
using bench::RaftPS.Bench;
using Grpc.Core;

namespace RaftServer.Tests.Bench;

/// <summary>
/// The benchmark's preload (bench/RaftPS.Bench/Preload.cs) against a fake cluster: when the leader
/// changes in the middle, the writers follow the new one and every key is written; a key that can
/// never be written ends the preload with an error naming it, after a bounded number of attempts.
/// </summary>
public sealed class PreloadTests
{
    /// <summary>Three nodes; the leader takes writes and hands leadership to the next node (a new term)
    /// after <paramref name="switchAfterWrites"/> of them; a write to any other node is refused
    /// UNAVAILABLE, as a node that lost leadership refuses it.</summary>
    private sealed class FakeCluster(int switchAfterWrites, int refusedKey = -1) : ITarget
    {
        private readonly object _gate = new();
        private int _leader;
        private long _term = 1;
        private int _accepted;
        public readonly Dictionary<int, int> Written = new();
        public int Refusals;

        public string Kind => "fake";
        public IReadOnlyList<Endpoint> Endpoints { get; } = [new("n0", 1), new("n1", 2), new("n2", 3)];
        public IWorker CreateWorker(int endpoint, int workerIndex) => new Worker(this, endpoint);
        public Task BetweenRunsAsync(int endpoint, CancellationToken ct) => Task.CompletedTask;
        public void Dispose() { }

        public Task<LeaderView> GetLeaderAsync(int endpoint, TimeSpan timeout, CancellationToken ct)
        {
            lock (_gate) return Task.FromResult(new LeaderView(_leader, _term));
        }

        private void Put(int endpoint, int key)
        {
            lock (_gate)
            {
                if (endpoint != _leader || key == refusedKey)
                {
                    Refusals++;
                    throw new RpcException(new Status(StatusCode.Unavailable, "not the leader"));
                }
                Written[key] = Written.GetValueOrDefault(key) + 1;
                if (++_accepted == switchAfterWrites)
                {
                    _leader = (_leader + 1) % Endpoints.Count;
                    _term++;
                }
            }
        }

        private sealed class Worker(FakeCluster cluster, int endpoint) : IWorker
        {
            public async Task PutAsync(int key, DateTime? deadline, CancellationToken ct)
            {
                await Task.Yield(); // writers interleave, as over the network
                cluster.Put(endpoint, key);
            }

            public Task<bool> GetAsync(int key, DateTime? deadline, CancellationToken ct) => throw new NotSupportedException();
        }
    }

    [Fact]
    public async Task Writers_follow_a_new_leader_and_every_key_is_written_once()
    {
        using var cluster = new FakeCluster(switchAfterWrites: 500);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        var outcome = await Preload.RunAsync(cluster, new LeaderView(0, 1), keyCount: 2_000, concurrency: 16, timeout.Token);

        Assert.Equal(Enumerable.Range(0, 2_000), cluster.Written.Keys.Order());
        Assert.All(cluster.Written.Values, times => Assert.Equal(1, times));
        Assert.Equal(new LeaderView(1, 2), outcome.End);
        Assert.Equal(1, outcome.TermsElapsed);
        Assert.Equal(1, outcome.LeaderSwitches);
        Assert.Equal(cluster.Refusals, outcome.RetriedWrites);
        Assert.InRange(outcome.RetriedWrites, 1, 16); // at most the writes in flight when it changed
        Assert.StartsWith("LEADER CHANGED during the preload: node 0 (term 1) -> node 1 (term 2)", outcome.Describe());
    }

    [Fact]
    public async Task A_preload_with_one_leader_says_so()
    {
        using var cluster = new FakeCluster(switchAfterWrites: int.MaxValue);

        var outcome = await Preload.RunAsync(cluster, new LeaderView(0, 1), keyCount: 300, concurrency: 8, CancellationToken.None);

        Assert.Equal(300, cluster.Written.Count);
        Assert.Equal(0, outcome.RetriedWrites);
        Assert.Equal("the leader stayed node 0 (term 1)", outcome.Describe());
    }

    [Fact]
    public async Task A_key_that_is_never_taken_ends_the_preload_naming_it_after_the_last_attempt()
    {
        using var cluster = new FakeCluster(switchAfterWrites: int.MaxValue, refusedKey: 3);

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            Preload.RunAsync(cluster, new LeaderView(0, 1), keyCount: 10, concurrency: 1, CancellationToken.None));

        Assert.StartsWith($"key 3: {Preload.AttemptsPerKey} attempts failed, the last against node 0: Unavailable", error.Message);
        Assert.Equal(Preload.AttemptsPerKey, cluster.Refusals);
    }
}
