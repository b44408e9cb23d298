using System.Diagnostics;
using Grpc.Core;

namespace RaftPS.Bench;

/// <summary>
/// One writer (C=1) writes continuously with a short deadline per attempt, moving to the next node
/// on any error. The leader is killed with SIGKILL; the result is the time from the kill to the
/// completion of the first write that was started after it. The killed node is started again
/// (same command line, directory and environment) before the next round.
/// </summary>
static class Failover
{
    public static async Task<int> RunAsync(Args a, CancellationToken ct)
    {
        var attemptTimeout = TimeSpan.FromMilliseconds(a.Int("attempt-timeout-ms", 250));
        using var target = Program.OpenTarget(a, 1, attemptTimeout);
        string label = a.Str("label", target.Kind)!;
        string pidsFile = a.Required("pids-file");
        int repeat = a.Int("repeat", 5);
        var before = TimeSpan.FromSeconds(a.Double("before-s", 1));
        var settle = TimeSpan.FromSeconds(a.Double("settle-s", 3));
        var maxWait = TimeSpan.FromSeconds(a.Double("max-wait-s", 20));
        string logDir = a.Str("log-dir", Path.GetTempPath())!;
        string? json = a.Str("json");
        int keys = a.Int("keys", 10_000);
        a.CheckAllUsed();

        int n = target.Endpoints.Count;
        var pids = ProcInfo.ReadPids(pidsFile);
        if (pids.Length != n) throw new UsageException($"{pidsFile} has {pids.Length} PIDs for {n} endpoints");
        var workers = new IWorker[n];
        for (int i = 0; i < n; i++) workers[i] = target.CreateWorker(i, 0);

        var results = new List<double>();
        for (int round = 1; round <= repeat; round++)
        {
            await WaitAllUpAsync(target, TimeSpan.FromSeconds(60), ct);
            var view = await Targets.WaitForLeaderAsync(target, TimeSpan.FromSeconds(30), ct);
            int victim = view.LeaderIndex;
            int pid = pids[victim];
            ProcInfo.CheckIsServer(pid);
            var launch = ProcInfo.Launch.Of(pid);

            long killedAt = 0;
            long recoveredAt = 0;
            long attempts = 0, failures = 0;
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var writer = Task.Run(async () =>
            {
                int ep = victim, key = 0;
                while (!stop.IsCancellationRequested)
                {
                    long start = Stopwatch.GetTimestamp();
                    try
                    {
                        attempts++;
                        await workers[ep].PutAsync(key++ % keys, DateTime.UtcNow + attemptTimeout, stop.Token);
                        long k = Volatile.Read(ref killedAt);
                        if (k != 0 && start >= k) { recoveredAt = Stopwatch.GetTimestamp(); return; }
                    }
                    catch (RpcException) when (!stop.IsCancellationRequested)
                    {
                        failures++;
                        ep = (ep + 1) % n;
                        await Task.Delay(5, CancellationToken.None);
                    }
                    catch (Exception) when (stop.IsCancellationRequested) { return; }
                }
            }, CancellationToken.None);

            await Task.Delay(before, ct);
            if (writer.IsCompleted) throw new InvalidOperationException("the writer stopped before the kill");
            using (var victimProcess = System.Diagnostics.Process.GetProcessById(pid))
            {
                Volatile.Write(ref killedAt, Stopwatch.GetTimestamp());
                victimProcess.Kill();
            }
            if (await Task.WhenAny(writer, Task.Delay(maxWait, ct)) != writer) { stop.Cancel(); }
            try { await writer; } catch (OperationCanceledException) { }

            double? ms = recoveredAt != 0 ? Stopwatch.GetElapsedTime(killedAt, recoveredAt).TotalMilliseconds : null;
            int newLeader = -1;
            try { newLeader = (await Targets.WaitForLeaderAsync(target, TimeSpan.FromSeconds(10), ct)).LeaderIndex; } catch (TimeoutException) { }

            // Start the killed node again, exactly as it was.
            await WaitExitedAsync(pid, ct);
            string log = Path.Combine(logDir, $"{label}-node{victim}-restart{round}.log");
            pids[victim] = launch.Start(log);
            ProcInfo.WritePids(pidsFile, pids);

            Console.WriteLine($"{label} fail-over {round}/{repeat}: killed node {victim} (pid {pid}), " +
                (ms is double v ? $"first write after {v:0} ms" : $"NO write within {maxWait.TotalSeconds:0} s") +
                $", new leader node {newLeader}, {failures} failed attempts; restarted as pid {pids[victim]}");
            Program.EmitJson(json, new Dictionary<string, object?>
            {
                ["kind"] = "failover", ["label"] = label, ["target"] = target.Kind, ["round"] = round,
                ["killed_node"] = victim, ["new_leader"] = newLeader, ["ms"] = ms is double d ? Math.Round(d, 1) : null,
                ["failed_attempts"] = failures, ["attempt_timeout_ms"] = attemptTimeout.TotalMilliseconds,
                ["time_utc"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ"),
            });
            if (ms is double m) results.Add(m);
            await Task.Delay(settle, ct);
        }

        await WaitAllUpAsync(target, TimeSpan.FromSeconds(60), ct);
        results.Sort();
        double? median = results.Count == 0 ? null
            : results.Count % 2 == 1 ? results[results.Count / 2] : (results[results.Count / 2 - 1] + results[results.Count / 2]) / 2;
        Console.WriteLine($"{label} fail-over median: {(median is double md ? $"{md:0} ms" : "n/a")} over {results.Count} of {repeat} rounds");
        Program.EmitJson(json, new Dictionary<string, object?>
        {
            ["kind"] = "failover_summary", ["label"] = label, ["target"] = target.Kind,
            ["median_ms"] = median is double x ? Math.Round(x, 1) : null, ["rounds"] = repeat, ["recovered"] = results.Count,
        });
        return results.Count == repeat ? 0 : 1;
    }

    static async Task WaitExitedAsync(int pid, CancellationToken ct)
    {
        var until = DateTime.UtcNow.AddSeconds(10);
        while (ProcInfo.IsAlive(pid) && DateTime.UtcNow < until) await Task.Delay(20, ct);
        // The OS may keep a zombie entry if the killed process was our child; ours never are.
    }

    /// <summary>Every node answers a status call and one of them leads.</summary>
    static async Task WaitAllUpAsync(ITarget target, TimeSpan timeout, CancellationToken ct)
    {
        var until = DateTime.UtcNow + timeout;
        while (true)
        {
            int up = 0; bool leader = false;
            for (int i = 0; i < target.Endpoints.Count; i++)
            {
                try
                {
                    var v = await target.GetLeaderAsync(i, TimeSpan.FromSeconds(1), ct);
                    up++;
                    leader |= v.LeaderIndex >= 0;
                }
                catch (RpcException) { }
            }
            if (up == target.Endpoints.Count && leader) return;
            if (DateTime.UtcNow > until) throw new TimeoutException($"only {up} of {target.Endpoints.Count} nodes answer after {timeout.TotalSeconds:0} s");
            await Task.Delay(100, ct);
        }
    }
}
