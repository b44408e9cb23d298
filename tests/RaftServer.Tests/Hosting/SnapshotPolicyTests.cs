using RaftServer.Hosting;

namespace RaftServer.Tests.Hosting;

public sealed class SnapshotPolicyTests
{
    private static readonly SnapshotPolicy Policy = new(MinEntries: 5_000, MaxLogBytes: 64 << 20);

    [Theory]
    // A small state: snapshot once the entry count is reached (the log outweighs the snapshot).
    [InlineData(4_999, 1_500_000, 300_000, false)]
    [InlineData(5_000, 1_500_000, 300_000, true)]
    // A large state: enough entries, but the log is still smaller than the last snapshot.
    [InlineData(50_000, 50_000_000, 100_000_000, false)]
    [InlineData(120_000, 100_000_000, 100_000_000, true)]
    // Past the byte cap, whatever the count or the snapshot size.
    [InlineData(10, 64 << 20, 1_000_000_000, true)]
    // Nothing logged since the last snapshot: never.
    [InlineData(0, 0, 0, false)]
    public void Snapshots_when_the_log_has_enough_entries_and_outweighs_the_last_snapshot_or_passes_the_cap(
        long entries, long bytes, long lastSnapshot, bool expected) =>
        Assert.Equal(expected, Policy.ShouldSnapshot(entries, bytes, lastSnapshot));

    [Fact]
    public void Settings_feed_the_policy() =>
        Assert.Equal(new SnapshotPolicy(7, 8192), SnapshotPolicy.From(NodeSettings.Parse(["1", "--snapshot-entries", "7", "--snapshot-log-bytes", "8192"])!));
}
