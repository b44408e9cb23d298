using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using RaftPS.Protocol;
using RaftServer.Tests.Consensus.Simulation;
using RaftServer.Tests.Integration;
using Xunit.Abstractions;

namespace RaftServer.Tests.NetworkFaults;

/// <summary>
/// The NOSPACE alarm while clients record a history: a 3-node lab cluster with a
/// <see cref="QuotaBytes"/> quota is filled by the harness's own writes until one is refused
/// RESOURCE_EXHAUSTED; for <see cref="AlarmFor"/> the clients' writes must be refused (none
/// acknowledged) while their reads are served; then the harness deletes keys, and the clients'
/// writes must be taken again. The whole history must be linearizable with no acknowledged write
/// lost, and the replicas must agree. docs/security.md, "Storage quota".
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class QuotaHistoryTests(ITestOutputHelper output)
{
    private const int Clients = 4;
    private const int Keys = 4;
    private const int QuotaBytes = 1 << 20;
    private const int FillValueBytes = 64 << 10;
    private const int MinAcknowledged = 5;
    private static readonly TimeSpan AlarmFor = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    [SkippableFact]
    public async Task Writes_are_refused_and_reads_served_while_the_quota_alarm_is_on_then_taken_again_and_the_history_stays_linearizable()
    {
        Skip.If(NetworkLab.Unavailable is not null, NetworkLab.Unavailable);
        var seed = int.TryParse(Environment.GetEnvironmentVariable("RAFTPS_QUOTA_SEED"), out var s) ? s : Random.Shared.Next(1, 1_000_000);
        output.WriteLine($"seed {seed} (replay: RAFTPS_QUOTA_SEED={seed}); quota {QuotaBytes} bytes");
        var problems = new List<string>();

        using var cluster = new LabCluster(3, environment: null, allowSuspend: false,
            "--quota-bytes", QuotaBytes.ToString(CultureInfo.InvariantCulture));
        await cluster.WaitForLeaderAsync();
        IReadOnlyList<RecordedOp> history;
        long alarmOn, alarmOff, cleared;
        await using (var workload = new Workload(cluster, Clients, Keys, seed))
        {
            await Task.Delay(TimeSpan.FromSeconds(1));
            var filled = await FillUntilRefused(cluster);
            alarmOn = Workload.NowUs;
            output.WriteLine($"the quota refused a write after {filled} keys of {FillValueBytes} bytes");
            await Task.Delay(AlarmFor);
            alarmOff = Workload.NowUs;

            // Four keys fewer: the live data falls below 90 % of the quota, where the alarm clears.
            var deleted = Math.Min(filled, 4);
            var leader = await cluster.WaitForLeaderAsync();
            for (var i = 0; i < deleted; i++)
                await cluster.Admin(leader).DeleteAsync(new DeleteRequest { Key = FillKey(i) }, deadline: DateTime.UtcNow + Patience);
            cleared = Workload.NowUs;
            var sw = System.Diagnostics.Stopwatch.StartNew();
            while (sw.Elapsed < Patience && workload.History.Count(o => o.IsWrite && o.Outcome == OpOutcome.Ok && o.Call > cleared) < MinAcknowledged)
                await Task.Delay(50);
            output.WriteLine($"deleted {deleted} keys");
            history = await workload.StopAsync();
        }

        var final = await NetworkFaultTests.FinalReads(cluster, Keys);
        history = [.. history, .. final];
        await NetworkFaultTests.AssertReplicasAgree(cluster, problems);

        var during = history.Where(o => o.Client >= 0 && o.Call >= alarmOn && o.Return <= alarmOff).ToList();
        var writesTaken = during.Count(o => o.IsWrite && o.Outcome == OpOutcome.Ok);
        var writesRefused = during.Count(o => o.IsWrite && o.Outcome == OpOutcome.Failed);
        var readsServed = during.Count(o => !o.IsWrite && o.Outcome == OpOutcome.Ok);
        var writesAfter = history.Count(o => o.IsWrite && o.Outcome == OpOutcome.Ok && o.Call > cleared);
        output.WriteLine($"while the alarm was on: {writesRefused} writes refused, {writesTaken} taken, {readsServed} reads served; after the deletes: {writesAfter} writes taken");
        if (writesTaken > 0) problems.Add($"{writesTaken} writes started and acknowledged while the alarm was on");
        if (writesRefused < MinAcknowledged) problems.Add($"only {writesRefused} writes were refused while the alarm was on");
        if (readsServed < MinAcknowledged) problems.Add($"only {readsServed} reads were served while the alarm was on");
        if (writesAfter < MinAcknowledged) problems.Add($"only {writesAfter} writes were taken once keys were deleted");

        output.WriteLine(RecordedHistory.Check(history, problems));
        if (problems.Count > 0) output.WriteLine(cluster.Outputs());
        Assert.True(problems.Count == 0, $"seed {seed}:\n" + string.Join("\n", problems));
    }

    private static string FillKey(int i) => $"fill/{i}";

    /// <summary>Writes fill keys to the leader until one is refused RESOURCE_EXHAUSTED (NOSPACE); returns how many were taken.</summary>
    private static async Task<int> FillUntilRefused(LabCluster cluster)
    {
        var value = ByteString.CopyFrom(new byte[FillValueBytes]);
        var leader = await cluster.WaitForLeaderAsync();
        for (var i = 0; i < 2 * QuotaBytes / FillValueBytes; i++)
        {
            try
            {
                await cluster.Admin(leader).SetAsync(new SetRequest { Key = FillKey(i), Value = value }, deadline: DateTime.UtcNow + Patience);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.ResourceExhausted)
            {
                Assert.Contains("NOSPACE", e.Status.Detail, StringComparison.Ordinal);
                return i;
            }
        }
        throw new InvalidOperationException($"no write was refused after {2 * QuotaBytes} bytes with a quota of {QuotaBytes}");
    }
}
