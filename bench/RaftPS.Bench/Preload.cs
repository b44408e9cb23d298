using Grpc.Core;

namespace RaftPS.Bench;

/// <summary>What a preload went through: the leader at its start and end, and how often it had to follow a new one.</summary>
sealed record PreloadOutcome(LeaderView Start, LeaderView End, int LeaderSwitches, long RetriedWrites)
{
    /// <summary>Elections seen between the start and the end (the term's rise; 0 when the cluster kept its leader).</summary>
    public long TermsElapsed => Math.Max(0, End.Term - Start.Term);

    public string Describe() => TermsElapsed == 0 && LeaderSwitches == 0 && RetriedWrites == 0
        ? $"the leader stayed node {Start.LeaderIndex} (term {Start.Term})"
        : $"LEADER CHANGED during the preload: node {Start.LeaderIndex} (term {Start.Term}) -> node {End.LeaderIndex} (term {End.Term}); "
          + $"followed a new leader {LeaderSwitches} time(s), retried {RetriedWrites} write(s)";
}

/// <summary>
/// Writes every key once with C concurrent writers. A write that fails (the leader stepped down, a
/// deadline passed during an election) is retried, against the leader the cluster has then: the
/// first writer to fail asks the nodes who leads now, and every writer moves its session there.
/// Bounded: a key is tried <see cref="AttemptsPerKey"/> times, a leader is waited for 30 s.
/// </summary>
static class Preload
{
    public const int AttemptsPerKey = 10;
    static readonly TimeSpan LeaderWait = TimeSpan.FromSeconds(30);

    /// <summary>The leader the writers use; <see cref="Epoch"/> rises each time it is looked up again.</summary>
    sealed class LeaderState(LeaderView view)
    {
        public readonly SemaphoreSlim Lock = new(1, 1);
        public LeaderView View = view;
        public int Epoch;
        public int Switches;
        public long Retries;
    }

    public static async Task<PreloadOutcome> RunAsync(ITarget target, LeaderView start, int keyCount, int concurrency, CancellationToken ct,
        Action<int>? progress = null)
    {
        int next = -1;
        var leader = new LeaderState(start);
        using var done = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var reporter = progress is null ? Task.CompletedTask : Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(TimeSpan.FromSeconds(10));
            try { while (await timer.WaitForNextTickAsync(done.Token)) progress(Math.Min(Volatile.Read(ref next) + 1, keyCount)); }
            catch (OperationCanceledException) { }
        }, CancellationToken.None);
        var tasks = new Task[concurrency];
        for (int w = 0; w < concurrency; w++)
        {
            int workerIndex = w;
            tasks[w] = Task.Run(async () =>
            {
                int epoch = Volatile.Read(ref leader.Epoch);
                int endpoint = leader.View.LeaderIndex;
                var worker = target.CreateWorker(endpoint, workerIndex);
                int k;
                while ((k = Interlocked.Increment(ref next)) < keyCount)
                {
                    for (int attempt = 1; ; attempt++)
                    {
                        try
                        {
                            await worker.PutAsync(k, DateTime.UtcNow.AddSeconds(10), ct);
                            break;
                        }
                        catch (RpcException e) when (!ct.IsCancellationRequested)
                        {
                            if (attempt >= AttemptsPerKey)
                                throw new InvalidOperationException($"key {k}: {attempt} attempts failed, the last against node {endpoint}: {e.StatusCode}: {e.Status.Detail}", e);
                            Interlocked.Increment(ref leader.Retries);
                            await Task.Delay(50 * attempt, ct);
                            var view = await FollowAsync(target, leader, epoch, ct);
                            epoch = Volatile.Read(ref leader.Epoch);
                            if (view.LeaderIndex != endpoint)
                            {
                                endpoint = view.LeaderIndex;
                                worker = target.CreateWorker(endpoint, workerIndex);
                            }
                        }
                    }
                }
            }, ct);
        }
        try { await Task.WhenAll(tasks); }
        finally
        {
            done.Cancel();
            await reporter;
        }
        var end = await Targets.WaitForLeaderAsync(target, LeaderWait, ct);
        return new PreloadOutcome(start, end, leader.Switches, Interlocked.Read(ref leader.Retries));
    }

    /// <summary>The leader now: looked up by the first writer that failed since <paramref name="seenEpoch"/>, the others take its answer.</summary>
    static async Task<LeaderView> FollowAsync(ITarget target, LeaderState leader, int seenEpoch, CancellationToken ct)
    {
        await leader.Lock.WaitAsync(ct);
        try
        {
            if (leader.Epoch != seenEpoch) return leader.View;
            var view = await Targets.WaitForLeaderAsync(target, LeaderWait, ct);
            if (view.LeaderIndex != leader.View.LeaderIndex)
            {
                leader.Switches++;
                Console.Error.WriteLine($"  the leader changed: node {leader.View.LeaderIndex} -> node {view.LeaderIndex} (term {view.Term}); the writers follow it");
            }
            leader.View = view;
            Volatile.Write(ref leader.Epoch, leader.Epoch + 1);
            return view;
        }
        finally { leader.Lock.Release(); }
    }
}
