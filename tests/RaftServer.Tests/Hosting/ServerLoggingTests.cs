using Microsoft.Extensions.Logging;
using RaftServer.Hosting;

namespace RaftServer.Tests.Hosting;

/// <summary>The categories the node's logger factory keeps and drops.</summary>
public sealed class ServerLoggingTests
{
    [Theory]
    [InlineData("Information")]
    [InlineData("Trace")]
    public void Hosting_diagnostics_is_off_at_every_level(string level)
    {
        // While this category is enabled at any level, ASP.NET Core creates an Activity and a log
        // scope for every request (docs/design.md, "Runtime settings").
        using var factory = ServerHost.CreateLoggerFactory(NodeSettings.Parse(["0", "--log-level", level])!);
        var hosting = factory.CreateLogger("Microsoft.AspNetCore.Hosting.Diagnostics");
        Assert.False(hosting.IsEnabled(LogLevel.Critical));
    }

    [Fact]
    public void Kestrel_warnings_and_the_nodes_own_lines_stay_on()
    {
        using var factory = ServerHost.CreateLoggerFactory(NodeSettings.Parse(["0"])!);
        Assert.True(factory.CreateLogger("Microsoft.AspNetCore.Server.Kestrel").IsEnabled(LogLevel.Warning));
        Assert.False(factory.CreateLogger("Microsoft.AspNetCore.Server.Kestrel").IsEnabled(LogLevel.Information));
        Assert.True(factory.CreateLogger(Log.NodeCategory).IsEnabled(LogLevel.Information));
        Assert.True(factory.CreateLogger(Log.RequestCategory).IsEnabled(LogLevel.Information));
    }
}
