using RaftServer.Hosting;

namespace RaftServer.Tests.Hosting;

/// <summary>The variable is process-wide: both cases run in one test, and it is put back after.</summary>
public sealed class SharedArrayPoolSizeTests
{
    [Fact]
    public void Sets_the_pool_size_when_unset_and_keeps_an_explicit_one()
    {
        var before = Environment.GetEnvironmentVariable(SharedArrayPoolSize.Variable);
        try
        {
            Environment.SetEnvironmentVariable(SharedArrayPoolSize.Variable, null);
            SharedArrayPoolSize.Configure();
            Assert.Equal("1024", Environment.GetEnvironmentVariable(SharedArrayPoolSize.Variable));

            Environment.SetEnvironmentVariable(SharedArrayPoolSize.Variable, "7");
            SharedArrayPoolSize.Configure();
            Assert.Equal("7", Environment.GetEnvironmentVariable(SharedArrayPoolSize.Variable));
        }
        finally
        {
            Environment.SetEnvironmentVariable(SharedArrayPoolSize.Variable, before);
        }
    }
}
