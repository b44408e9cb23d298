using System.Diagnostics;
using Grpc.Core;

namespace RaftPS.Bench;

enum Workload { Put, Get, Mixed }

/// <param name="ReadServerCpu">The servers' CPU seconds so far (null when unreadable), read at the
/// edges of the measured window for <see cref="RunResult.ServerCpuSeconds"/>; none: not measured.</param>
sealed record RunSettings(Workload Workload, int Concurrency, TimeSpan Warmup, TimeSpan Duration, int KeyCount, int TargetEndpoint,
    Func<double?>? ReadServerCpu = null);

/// <param name="ServerCpuSeconds">The servers' CPU in the measured window, the same window as the
/// client's and as the operations counted; null when no server was given or one could not be read.</param>
sealed record RunResult(
    long Ops, long Puts, long Gets, long Errors, long Missing, double Seconds,
    Histogram Latency, double ClientCpuPercent, double ClientCpuSeconds, string? FirstError, ClientGc Gc,
    double? ServerCpuSeconds = null);

/// <summary>What the client process's GC did in the measured window: allocated bytes, collections of any generation, pause time.</summary>
sealed record ClientGc(long AllocatedBytes, int Collections, TimeSpan Pause)
{
    public static ClientGc Now() => new(GC.GetTotalAllocatedBytes(precise: false), GC.CollectionCount(0), GC.GetTotalPauseDuration());
    public ClientGc Since(ClientGc start) => new(AllocatedBytes - start.AllocatedBytes, Collections - start.Collections, Pause - start.Pause);
}

/// <summary>
/// The closed loop: C workers, each with one request in flight, issue the next as soon as the
/// last completes. Operations that complete inside the measured window are counted; warm-up
/// and the drain at the end are not.
/// </summary>
static class Driver
{
    const int PhaseWarmup = 0, PhaseMeasure = 1, PhaseStop = 2;

    /// <summary>What the workers that ran on one thread counted. Per thread, not per worker: a histogram
    /// is 50 KiB, so one per worker was 50 MiB at C=1,024, written at random (docs/benchmarks.md, "Cost
    /// per request at high concurrency"). A thread runs one worker's continuation at a time.</summary>
    sealed class Tallies
    {
        public readonly Histogram Latency = new();
        public long Puts, Gets, Missing;
    }

    sealed class WorkerState(int index)
    {
        public ulong Rng = 0x9E3779B97F4A7C15UL * (ulong)(index + 1);
        public long Errors;
        public string? FirstError;

        public uint Next()
        {
            // xorshift64*: cheap, per worker, no shared Random.
            ulong x = Rng;
            x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
            Rng = x;
            return (uint)((x * 0x2545F4914F6CDD1DUL) >> 32);
        }
    }

    public static async Task<RunResult> RunAsync(ITarget target, RunSettings s, CancellationToken ct)
    {
        int phase = PhaseWarmup;
        var states = new WorkerState[s.Concurrency];
        var tasks = new Task[s.Concurrency];
        using var stopAll = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var tallies = new ThreadLocal<Tallies>(() => new Tallies(), trackAllValues: true);
        for (int w = 0; w < s.Concurrency; w++)
        {
            var state = states[w] = new WorkerState(w);
            var worker = target.CreateWorker(s.TargetEndpoint, w);
            tasks[w] = Task.Run(() => Loop(worker, state, tallies, s.Workload, s.KeyCount, () => Volatile.Read(ref phase), stopAll.Token));
        }

        await Task.Delay(s.Warmup, ct);
        var process = Process.GetCurrentProcess();
        process.Refresh();
        var cpu0 = process.TotalProcessorTime;
        var serverCpu0 = s.ReadServerCpu?.Invoke();
        var gc0 = ClientGc.Now();
        long t0 = Stopwatch.GetTimestamp();
        Volatile.Write(ref phase, PhaseMeasure);

        await Task.Delay(s.Duration, ct);

        Volatile.Write(ref phase, PhaseStop);
        long t1 = Stopwatch.GetTimestamp();
        process.Refresh();
        var cpu1 = process.TotalProcessorTime;
        var serverCpu1 = s.ReadServerCpu?.Invoke();
        var gc = ClientGc.Now().Since(gc0);
        double seconds = Stopwatch.GetElapsedTime(t0, t1).TotalSeconds;

        // Let in-flight calls finish; bounded, then cancel what is left.
        var all = Task.WhenAll(tasks);
        if (await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(10), ct)) != all) stopAll.Cancel();
        try { await all; } catch (OperationCanceledException) { }

        var latency = new Histogram();
        long puts = 0, gets = 0, errors = 0, missing = 0;
        string? firstError = null;
        foreach (var t in tallies.Values)
        {
            latency.Add(t.Latency);
            puts += t.Puts; gets += t.Gets; missing += t.Missing;
        }
        foreach (var st in states)
        {
            errors += st.Errors;
            firstError ??= st.FirstError;
        }
        double cpuSeconds = (cpu1 - cpu0).TotalSeconds;
        return new RunResult(latency.Count, puts, gets, errors, missing, seconds, latency, cpuSeconds / seconds * 100.0, cpuSeconds, firstError, gc,
            serverCpu1 - serverCpu0);
    }

    static async Task Loop(IWorker worker, WorkerState st, ThreadLocal<Tallies> tallies, Workload workload, int keyCount, Func<int> phase, CancellationToken ct)
    {
        while (true)
        {
            int p = phase();
            if (p == PhaseStop || ct.IsCancellationRequested) return;
            uint r = st.Next();
            int key = (int)((ulong)r * (uint)keyCount >> 32);
            bool put = workload == Workload.Put || (workload == Workload.Mixed && (st.Next() & 1) == 0);
            long start = Stopwatch.GetTimestamp();
            bool ok = true, found = true;
            try
            {
                if (put) await worker.PutAsync(key, null, ct).ConfigureAwait(false);
                else found = await worker.GetAsync(key, null, ct).ConfigureAwait(false);
            }
            catch (RpcException e) when (!ct.IsCancellationRequested)
            {
                ok = false;
                st.FirstError ??= $"{e.StatusCode}: {e.Status.Detail}";
            }
            catch (OperationCanceledException) { return; }
            catch (RpcException) { return; }
            long end = Stopwatch.GetTimestamp();
            // Counted when it completes inside the measured window.
            if (phase() != PhaseMeasure) { if (!ok) await Task.Delay(10, CancellationToken.None).ConfigureAwait(false); continue; }
            if (!ok)
            {
                st.Errors++;
                await Task.Delay(10, CancellationToken.None).ConfigureAwait(false); // no error storm
                continue;
            }
            var t = tallies.Value!;
            t.Latency.RecordTicks(end - start);
            if (put) t.Puts++;
            else { t.Gets++; if (!found) t.Missing++; }
        }
    }
}
