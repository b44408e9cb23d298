using System.Diagnostics;
using System.Globalization;
using RaftServer.Hosting;
using RaftServer.Tests.Consensus.Simulation;
using RaftServer.Tests.Integration;
using Xunit.Abstractions;

namespace RaftServer.Tests.NetworkFaults;

/// <summary>
/// A follower's disk fills while clients record a history: its data directory is moved onto a
/// small tmpfs filled up by a ballast file, and it is restarted there. Its log segment was
/// allocated ahead, so it goes on appending; the first write that needs new space (a snapshot,
/// every <see cref="SnapshotEntries"/> entries, or the next segment) must stop it (exit code 3, the "fatal: disk error" line) while the
/// other two keep taking writes; once the ballast is gone it starts again and catches up. The whole
/// history must be linearizable with no acknowledged write lost, and the replicas must agree.
/// docs/security.md, "Disk errors"; docs/testing.md, "Network faults".
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class DiskFullHistoryTests(ITestOutputHelper output)
{
    private const int Clients = 4;
    private const int Keys = 4;
    private const int SnapshotEntries = 1000;
    private const int MinWritesWhileStopping = 5;
    private static readonly TimeSpan StopWithin = TimeSpan.FromSeconds(60);

    [SkippableFact]
    public async Task A_follower_whose_disk_fills_stops_with_exit_code_3_while_the_others_serve_and_the_history_stays_linearizable()
    {
        Skip.If(NetworkLab.Unavailable is not null, NetworkLab.Unavailable);
        var seed = int.TryParse(Environment.GetEnvironmentVariable("RAFTPS_DISKFULL_SEED"), out var s) ? s : Random.Shared.Next(1, 1_000_000);
        output.WriteLine($"seed {seed} (replay: RAFTPS_DISKFULL_SEED={seed})");
        var random = new Random(seed);
        var problems = new List<string>();

        using var cluster = new LabCluster(3, environment: null, allowSuspend: false,
            "--snapshot-entries", SnapshotEntries.ToString(CultureInfo.InvariantCulture));
        string? mounted = null;
        try
        {
            await cluster.WaitForLeaderAsync();
            IReadOnlyList<RecordedOp> history;
            long stopStart, stopEnd;
            await using (var workload = new Workload(cluster, Clients, Keys, seed))
            {
                await Task.Delay(TimeSpan.FromSeconds(1));
                var leader = await cluster.WaitForLeaderAsync();
                var followers = cluster.Ids.Where(i => i != leader).ToList();
                var follower = followers[random.Next(followers.Count)];

                // The follower's data, moved onto a file system with no space left.
                cluster.Kill(follower);
                var dataDir = cluster.DataDir(follower);
                var saved = dataDir + ".saved";
                Directory.Move(dataDir, saved);
                Directory.CreateDirectory(dataDir);
                var used = Directory.EnumerateFiles(saved, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
                var size = used + (16L << 20);
                Run("mount", "-t", "tmpfs", "-o", $"size={size}", "tmpfs", dataDir);
                mounted = dataDir;
                Run("cp", "-a", saved + "/.", dataDir);
                var ballast = Path.Combine(dataDir, "ballast");
                var free = new DriveInfo(dataDir).AvailableFreeSpace;
                // Preallocated (fallocate), so tmpfs really gives it the space.
                using (new FileStream(ballast, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, PreallocationSize = free })) { }
                output.WriteLine($"node {follower}: {used} bytes of data on a {size}-byte tmpfs, {new DriveInfo(dataDir).AvailableFreeSpace} bytes free");

                stopStart = Workload.NowUs;
                cluster.Start(follower);
                var exit = await cluster.Process(follower).WaitForExit(StopWithin);
                stopEnd = Workload.NowUs;
                output.WriteLine($"node {follower} exited with {exit?.ToString(CultureInfo.InvariantCulture) ?? "nothing (still running)"} after {(stopEnd - stopStart) / 1000} ms");
                if (exit != ServerHost.DiskFailureExitCode)
                    problems.Add($"node {follower} on a full disk: exit code {exit?.ToString(CultureInfo.InvariantCulture) ?? "none within " + StopWithin}, expected {ServerHost.DiskFailureExitCode}");
                if (!cluster.Process(follower).Output.Contains("fatal: disk error", StringComparison.Ordinal))
                    problems.Add($"node {follower} did not log 'fatal: disk error'");

                // Space again: it starts, replays and catches up.
                File.Delete(ballast);
                cluster.Kill(follower);
                cluster.Start(follower);
                await Task.Delay(TimeSpan.FromSeconds(1));
                history = await workload.StopAsync();
            }

            var final = await NetworkFaultTests.FinalReads(cluster, Keys);
            history = [.. history, .. final];
            await NetworkFaultTests.AssertReplicasAgree(cluster, problems);

            var writes = history.Count(o => o.IsWrite && o.Outcome == OpOutcome.Ok && o.Return >= stopStart && o.Return <= stopEnd);
            output.WriteLine($"while the node ran out of disk: {writes} writes acknowledged in {(stopEnd - stopStart) / 1000} ms");
            if (writes < MinWritesWhileStopping)
                problems.Add($"the cluster took {writes} writes while a follower's disk filled (at least {MinWritesWhileStopping} expected)");

            output.WriteLine(RecordedHistory.Check(history, problems));
            if (problems.Count > 0) output.WriteLine(cluster.Outputs());
            Assert.True(problems.Count == 0, $"seed {seed}:\n" + string.Join("\n", problems));
        }
        finally
        {
            foreach (var id in cluster.Ids) cluster.Kill(id);
            if (mounted is not null) Run("umount", "-l", mounted);
        }
    }

    private static void Run(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args) info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)}: exit {p.ExitCode}: {error.Trim()}");
    }
}
