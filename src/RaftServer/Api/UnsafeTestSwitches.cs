namespace RaftServer.Api;

/// <summary>
/// Ways to break the server on purpose, read from the environment once at start, for one use
/// only: proving that the tests catch a broken server (tests/RaftServer.Tests/NetworkFaults,
/// docs/testing.md). Never a feature: the server warns loudly at start when one is set.
/// </summary>
public static class UnsafeTestSwitches
{
    /// <summary>The environment variable that makes every read skip the read-index round.</summary>
    public const string LocalReadsVariable = "RAFTPS_TEST_ONLY_UNSAFE_LOCAL_READS";

    /// <summary>
    /// Every read is answered from this node's own state at once, as a stale read is, even when the
    /// client asked for a linearizable one: a node cut off from the cluster keeps answering old values.
    /// </summary>
    public static bool LocalReads { get; } = Environment.GetEnvironmentVariable(LocalReadsVariable) == "1";

    /// <summary>The environment variable that makes every fsync after the first N fail (EIO).</summary>
    public const string FailFsyncAfterVariable = "RAFTPS_TEST_ONLY_FAIL_FSYNC_AFTER";

    /// <summary>
    /// After this many fsyncs of files, every fsync fails with EIO (<see cref="FsyncFailingDisk"/>):
    /// the node must stop with its disk-error exit code, having acknowledged only what it made durable.
    /// </summary>
    public static long? FailFsyncAfter { get; } =
        long.TryParse(Environment.GetEnvironmentVariable(FailFsyncAfterVariable), out var n) && n >= 0 ? n : null;

    /// <summary>The file layer the node's storage uses: the real disk unless <see cref="FailFsyncAfter"/> is set.</summary>
    internal static Storage.IDisk Disk => FailFsyncAfter is { } n ? new FsyncFailingDisk(n) : Storage.Disk.Real;
}
