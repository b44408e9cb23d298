using RaftServer.Hosting;

namespace RaftServer.Tests.Hosting;

/// <summary>The command-line options of the client limits, admission control and --allow-suspend.</summary>
public sealed class ClientLimitsSettingsTests
{
    [Fact]
    public void The_defaults_fit_the_largest_legal_request_and_suspend_is_off()
    {
        var s = NodeSettings.Parse(["0"])!;
        Assert.False(s.AllowSuspend);
        Assert.Equal((4 << 20) + (64 << 10), s.Limits.MaxRequestBytes);
        Assert.True(s.Limits.MaxRequestBytes > RaftServer.Api.RequestValidation.MaxBatchBytes);
        Assert.Equal((10_000, 10_000), (s.Limits.MaxPendingWrites, s.Limits.MaxPendingReads));
        Assert.Equal((4096L, 128, 32 << 10), (s.Limits.MaxConnections, s.Limits.MaxStreamsPerConnection, s.Limits.MaxHeaderBytes));
    }

    [Fact]
    public void Every_limit_is_read()
    {
        var s = NodeSettings.Parse(["0", "--max-request-bytes", "65536", "--max-pending-writes", "4", "--max-pending-reads", "5",
            "--max-client-connections", "10", "--max-streams-per-connection", "20", "--max-header-bytes", "2048", "--allow-suspend"])!;
        Assert.Equal((65536, 4, 5, 10L, 20, 2048, true),
            (s.Limits.MaxRequestBytes, s.Limits.MaxPendingWrites, s.Limits.MaxPendingReads, s.Limits.MaxConnections,
             s.Limits.MaxStreamsPerConnection, s.Limits.MaxHeaderBytes, s.AllowSuspend));
    }

    [Theory]
    [InlineData("0 --max-request-bytes 100", "--max-request-bytes: '100' is not a whole number of at least 4096")]
    [InlineData("0 --max-request-bytes 4294967296", "--max-request-bytes: 4294967296 is more than 2147483647")]
    [InlineData("0 --max-pending-writes 0", "--max-pending-writes: '0' is not a whole number of at least 1")]
    [InlineData("0 --max-pending-reads -1", "--max-pending-reads: '-1' is not a whole number of at least 1")]
    [InlineData("0 --max-streams-per-connection 100000", "--max-streams-per-connection: 100000 is more than 65536")]
    [InlineData("0 --max-header-bytes 10", "--max-header-bytes: '10' is not a whole number of at least 1024")]
    [InlineData("0 --max-client-connections", "--max-client-connections needs a value")]
    public void Bad_limits_are_usage_errors(string args, string message)
    {
        var e = Assert.Throws<UsageException>(() => NodeSettings.Parse(args.Split(' ')));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void The_usage_names_every_new_option()
    {
        foreach (var option in new[] { "--max-request-bytes", "--max-pending-writes", "--max-pending-reads", "--max-client-connections",
                     "--max-streams-per-connection", "--max-header-bytes", "--allow-suspend" })
            Assert.Contains(option, NodeSettings.Usage);
    }
}
