extern alias bench;
using bench::RaftPS.Bench;

namespace RaftServer.Tests.Bench;

/// <summary>
/// The benchmark's closed loop (bench/RaftPS.Bench/Driver.cs) against a fake target whose "server
/// CPU" is a counter each request advances: the servers' CPU per request it reports covers the
/// measured window only, as the operations it counts and the client's CPU do.
/// </summary>
public sealed class DriverTests
{
    /// <summary>Every request costs the fake servers one millisecond of "CPU" and is answered after
    /// a short wait, so the warm-up does as much work per second as the measured window.</summary>
    private sealed class CountingTarget : ITarget
    {
        private long _requests;

        public double ServerCpuSeconds => Interlocked.Read(ref _requests) / 1000.0;
        public string Kind => "fake";
        public IReadOnlyList<Endpoint> Endpoints { get; } = [new("n0", 1)];
        public IWorker CreateWorker(int endpoint, int workerIndex) => new Worker(this);
        public Task<LeaderView> GetLeaderAsync(int endpoint, TimeSpan timeout, CancellationToken ct) => Task.FromResult(new LeaderView(0, 1));
        public Task BetweenRunsAsync(int endpoint, CancellationToken ct) => Task.CompletedTask;
        public void Dispose() { }

        private sealed class Worker(CountingTarget target) : IWorker
        {
            public async Task PutAsync(int key, DateTime? deadline, CancellationToken ct) => await GetAsync(key, deadline, ct);

            public async Task<bool> GetAsync(int key, DateTime? deadline, CancellationToken ct)
            {
                Interlocked.Increment(ref target._requests);
                await Task.Delay(2, ct);
                return true;
            }
        }
    }

    [Fact]
    public async Task Server_CPU_is_read_at_the_edges_of_the_measured_window_not_across_the_warm_up()
    {
        var target = new CountingTarget();
        const int concurrency = 8;
        var settings = new RunSettings(Workload.Get, concurrency, Warmup: TimeSpan.FromSeconds(1.5), Duration: TimeSpan.FromSeconds(1),
            KeyCount: 100, TargetEndpoint: 0, ReadServerCpu: () => target.ServerCpuSeconds);

        var result = await Driver.RunAsync(target, settings, CancellationToken.None);

        // The window must hold more requests than the slack at its edges (one in flight per worker at
        // each) for the range below to tell anything. Not a rate: on CI's loaded machine the fake's 2 ms
        // delays have run as slowly as 25 requests a second.
        Assert.True(result.Ops > 2 * concurrency, $"only {result.Ops} requests in the window");
        Assert.NotNull(result.ServerCpuSeconds);
        // Each request counted in the window was started inside it, give or take the one in flight
        // per worker at each edge; the warm-up's requests are not in it.
        var inWindow = result.ServerCpuSeconds.Value * 1000;
        Assert.InRange(inWindow, result.Ops - 2 * concurrency, result.Ops + 2 * concurrency);
        // That tells only if the warm-up made more requests than that slack (plus the drain's one per
        // worker): CPU read across the warm-up would then fall outside the range. Not a rate: on a
        // loaded machine (the suite runs in parallel) the warm-up's first second can be slow.
        var outside = target.ServerCpuSeconds * 1000 - inWindow;
        Assert.True(outside > 3 * concurrency,
            $"the warm-up made about {outside - concurrency} requests, too few for this test to tell (it needs more than {2 * concurrency})");
    }

    [Fact]
    public async Task Without_servers_to_read_no_server_CPU_is_reported()
    {
        var settings = new RunSettings(Workload.Put, 2, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(200), 10, 0);

        var result = await Driver.RunAsync(new CountingTarget(), settings, CancellationToken.None);

        Assert.True(result.Ops > 0);
        Assert.Null(result.ServerCpuSeconds);
    }
}
