using Microsoft.Extensions.Logging;
using RaftServer.Hosting;

namespace RaftServer.Tests.Hosting;

public sealed class NodeSettingsTests
{
    [Fact]
    public void Defaults_give_fast_fail_over_ticks()
    {
        var s = NodeSettings.Parse(["2"])!;
        Assert.Equal(2, s.Id);
        Assert.Equal("config.conf", s.ConfigPath);
        Assert.Null(s.DataDir);
        Assert.Null(s.LogFile);
        Assert.Equal(50, s.HeartbeatMs);
        Assert.Equal(250, s.ElectionTimeoutMs);
        Assert.Equal(5, s.ElectionTicks);
        Assert.Equal(LogLevel.Information, s.LogLevel);
        Assert.False(s.Quiet);
        Assert.Equal(5_000, s.SnapshotEntries);
        Assert.Equal(64L << 20, s.SnapshotLogBytes);
        Assert.Null(s.MetricsAddress);
        Assert.False(s.JsonLogs);
        Assert.Equal(Path.Combine(Directory.GetCurrentDirectory(), "data", "node-2"), s.ResolveDataDir());
    }

    [Fact]
    public void Every_option_is_read()
    {
        var s = NodeSettings.Parse(["--config", "c.conf", "1", "--data-dir", "/tmp/d", "--heartbeat-ms", "20", "--election-timeout-ms", "300",
            "--log-level", "Warning", "--quiet", "--log-file", "node.log"])!;
        Assert.Equal((1, "c.conf", "/tmp/d", 20, 300, 15, LogLevel.Warning, true, "node.log"),
            (s.Id, s.ConfigPath, s.DataDir, s.HeartbeatMs, s.ElectionTimeoutMs, s.ElectionTicks, s.LogLevel, s.Quiet, s.LogFile));
        Assert.Equal("/tmp/d", s.ResolveDataDir());
        Assert.Null(NodeSettings.Parse(["--help"]));
        var snap = NodeSettings.Parse(["0", "--snapshot-entries", "100", "--snapshot-log-bytes", "1048576"])!;
        Assert.Equal((100L, 1L << 20), (snap.SnapshotEntries, snap.SnapshotLogBytes));
        var observed = NodeSettings.Parse(["0", "--metrics-address", "[::1]:9100", "--log-format", "JSON"])!;
        Assert.Equal(("::1", 9100, true), (observed.MetricsAddress!.Host, observed.MetricsAddress.Port, observed.JsonLogs));
        Assert.Equal(0, NodeSettings.Parse(["0", "--metrics-address", "localhost:0"])!.MetricsAddress!.Port);
        var join = NodeSettings.Parse(["3", "--join", "[fd00::5]:50000"])!.Join!;
        Assert.Equal(("fd00::5", 50000), (join.Host, join.Port));
        Assert.False(NodeSettings.Parse(["0", "--log-format", "plain"])!.JsonLogs);
    }

    [Theory]
    [InlineData("", "the node id is missing")]
    [InlineData("-1", "node id '-1' is not a non-negative integer")]
    [InlineData("1 2", "unexpected argument '2'")]
    [InlineData("1 --config", "--config needs a value")]
    [InlineData("1 --heartbeat-ms 0", "--heartbeat-ms: '0' is not a number of milliseconds from 1 to 60000")]
    [InlineData("1 --election-timeout-ms x", "--election-timeout-ms: 'x' is not a number")]
    [InlineData("1 --heartbeat-ms 100 --election-timeout-ms 150", "must be at least twice")]
    [InlineData("1 --log-level loud", "--log-level: 'loud' is not one of")]
    [InlineData("1 --log-level 3", "--log-level: '3' is not one of")]
    [InlineData("1 --what", "unknown option '--what'")]
    [InlineData("1 --metrics-address 9100", "--metrics-address: '9100' is not HOST:PORT")]
    [InlineData("1 --metrics-address host:70000", "--metrics-address: 'host:70000' is not HOST:PORT")]
    [InlineData("1 --join ::1:5000", "--join: '::1:5000' is not HOST:PORT (an IPv6 address in brackets: [::1]:50000)")]
    [InlineData("1 --join [db1]:5000", "--join: '[db1]:5000' is not HOST:PORT")]
    [InlineData("1 --log-format xml", "--log-format: 'xml' is not plain or json")]
    [InlineData("1 --snapshot-entries 0", "--snapshot-entries: '0' is not a whole number of at least 1")]
    [InlineData("1 --snapshot-log-bytes 1k", "--snapshot-log-bytes: '1k' is not a whole number of at least 4096")]
    public void Bad_command_lines_say_what_is_wrong(string args, string message)
    {
        var e = Assert.Throws<UsageException>(() => NodeSettings.Parse(args.Split(' ', StringSplitOptions.RemoveEmptyEntries)));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Client_tls_and_auth_options_are_read_and_checked()
    {
        var s = NodeSettings.Parse(["0", "--cert-file", "n.pem", "--key-file", "n.key.pem", "--client-ca-file", "ca.pem", "--auth-file", "users"])!;
        Assert.Equal(("n.pem", "n.key.pem", "ca.pem", "users"), (s.CertFile, s.KeyFile, s.ClientCaFile, s.AuthFile));
        var plain = NodeSettings.Parse(["0"])!;
        Assert.Equal((null, null, null, null), (plain.CertFile, plain.KeyFile, plain.ClientCaFile, plain.AuthFile));
        Assert.Contains("go together", Assert.Throws<UsageException>(() => NodeSettings.Parse(["0", "--cert-file", "n.pem"])).Message);
        Assert.Contains("go together", Assert.Throws<UsageException>(() => NodeSettings.Parse(["0", "--key-file", "n.key.pem"])).Message);
        Assert.Contains("--client-ca-file needs --cert-file", Assert.Throws<UsageException>(() => NodeSettings.Parse(["0", "--client-ca-file", "ca.pem"])).Message);
    }
}
