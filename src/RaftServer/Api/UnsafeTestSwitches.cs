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
}
