using Microsoft.Extensions.Logging.Abstractions;
using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.StateMachine;

namespace RaftServer.Tests.Hosting;

/// <summary>The storage quota's NOSPACE alarm, alone and in the driver (one voter: it commits alone).</summary>
public sealed class StorageQuotaTests
{
    private const long Quota = 10_000;

    private static byte[] Put(string key, int valueBytes) => Command.EncodePut(0, 0, 0, key, new byte[valueBytes]);
    private static byte[] Remove(string key) => Command.EncodeRemove(0, 0, 0, key);

    [Fact]
    public void The_quota_is_2_GiB_unless_set_and_at_least_1_MiB()
    {
        Assert.Equal(2L << 30, NodeSettings.Parse(["0"])!.QuotaBytes);
        Assert.Equal(1L << 20, NodeSettings.Parse(["0", "--quota-bytes", "1048576"])!.QuotaBytes);
        var e = Assert.Throws<UsageException>(() => NodeSettings.Parse(["0", "--quota-bytes", "1000"]));
        Assert.Contains("--quota-bytes: '1000' is not a whole number of at least 1048576", e.Message);
    }

    [Fact]
    public void Writes_that_add_data_are_refused_past_the_quota_and_let_in_again_at_90_percent()
    {
        var quota = new StorageQuota(Quota, NullLogger.Instance);
        Assert.Null(quota.Refuse(Put("a", 100), 5_000));
        var refusal = quota.Refuse(Put("a", 1_000), 9_500);
        Assert.NotNull(refusal);
        Assert.StartsWith("NOSPACE: the cluster's storage quota of 10000 bytes is used up", refusal);
        Assert.Contains("delete keys or raise --quota-bytes", refusal);
        Assert.True(quota.Alarm);

        // While the alarm is on, even a write that would fit is refused; grants too. Deletes and revokes are not.
        Assert.NotNull(quota.Refuse(Put("b", 1), 9_500));
        Assert.NotNull(quota.Refuse(Command.EncodeLeaseGrant(0, 0, 0, 5_000), 9_500));
        Assert.Null(quota.Refuse(Remove("a"), 9_500));
        Assert.Null(quota.Refuse(Command.EncodeLeaseRevoke(0, 0, 0, 7, expired: false), 9_500));

        quota.Update(9_001); // deleted a little: still above 90%
        Assert.True(quota.Alarm);
        quota.Update(9_000);
        Assert.False(quota.Alarm);
        Assert.Null(quota.Refuse(Put("b", 100), 9_000));
    }

    private static DriverHarness SingleVoter(long quota)
    {
        var h = new DriverHarness(bootstrap: Configuration.FromVoters([DriverHarness.Self]));
        h.Driver.Quota = new StorageQuota(quota, NullLogger.Instance);
        for (var i = 0; i < 100 && h.Node.Role != Role.Leader; i++) h.Driver.Tick();
        h.Turn();
        Assert.Equal(Role.Leader, h.Node.Role);
        return h;
    }

    private static WriteOutcome Write(DriverHarness h, byte[] data)
    {
        var w = new PendingWrite(data);
        h.Driver.Handle(new WriteRequested(w));
        h.Turn();
        Assert.True(w.Task.IsCompleted, "the write is not answered");
        return w.Task.Result;
    }

    [Fact]
    public async Task The_leader_refuses_writes_past_the_quota_serves_reads_and_deletes_and_clears_the_alarm_after_deletes()
    {
        var h = SingleVoter(Quota);
        var written = new List<string>();
        WriteOutcome outcome;
        for (var i = 0; ; i++)
        {
            outcome = Write(h, Put($"k{i}", 300));
            if (outcome.Code != OutcomeCode.Ok) break;
            written.Add($"k{i}");
        }
        Assert.Equal(OutcomeCode.NoSpace, outcome.Code);
        Assert.StartsWith("NOSPACE:", outcome.Reason);
        Assert.True(h.Driver.State.LiveBytes <= Quota);
        Assert.False(h.Driver.State.TryGet($"k{written.Count}", out _)); // the refused write changed nothing
        Assert.True(h.Driver.Status().NoSpaceAlarm);
        Assert.Equal(Quota, h.Driver.Status().QuotaBytes);

        // Reads: every acknowledged write is there.
        foreach (var key in written)
        {
            var read = new PendingRead { Key = key, Stale = true };
            h.Driver.Handle(new ReadRequested(read));
            Assert.True(read.Task.IsCompleted && (await read.Task).Found, key);
        }

        // Deleting only a little is not enough (hysteresis): writes stay refused until the live
        // data is at 90% of the quota.
        Assert.Equal(OutcomeCode.Ok, Write(h, Remove(written[0])).Code);
        Assert.True(h.Driver.State.LiveBytes > Quota * 9 / 10);
        Assert.Equal(OutcomeCode.NoSpace, Write(h, Put("small", 1)).Code);
        var deleted = 1;
        while (h.Driver.Status().NoSpaceAlarm)
        {
            Assert.True(h.Driver.State.LiveBytes > Quota * 9 / 10);
            Assert.Equal(OutcomeCode.Ok, Write(h, Remove(written[deleted++])).Code);
        }
        Assert.True(h.Driver.State.LiveBytes <= Quota * 9 / 10);
        Assert.Equal(OutcomeCode.Ok, Write(h, Put("again", 1_000)).Code);
    }

    [Fact]
    public void A_follower_does_not_refuse_it_forwards_and_the_leader_decides()
    {
        var h = new DriverHarness();
        h.Driver.Quota = new StorageQuota(1 << 20, NullLogger.Instance);
        h.FollowNode2();
        var outcome = Write(h, Put("big", 2 << 20));
        Assert.Equal(OutcomeCode.NotLeader, outcome.Code);
    }
}
