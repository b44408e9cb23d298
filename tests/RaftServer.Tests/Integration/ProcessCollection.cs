namespace RaftServer.Tests.Integration;

/// <summary>
/// Tests that run server processes: one at a time (2 shared cores: clusters running side by side
/// would starve each other into spurious elections), after the unit tests, which run in parallel.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessCollection
{
    public const string Name = "server processes";
}

/// <summary>One 3-node cluster shared by the tests that do not disturb it.</summary>
public sealed class SharedClusterFixture : IAsyncLifetime
{
    public LocalCluster Cluster { get; private set; } = null!;
    public int Leader { get; private set; }

    public async Task InitializeAsync()
    {
        Cluster = await LocalCluster.StartAsync(3, "shared", "--allow-suspend"); // SharedClusterTests checks Suspend's argument validation
        Leader = await Cluster.WaitForLeaderAsync();
    }

    public async Task DisposeAsync() => await Cluster.DisposeAsync();
}
