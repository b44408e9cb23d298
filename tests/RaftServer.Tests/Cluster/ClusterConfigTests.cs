using RaftServer.Cluster;
using RaftServer.Hosting;

namespace RaftServer.Tests.Cluster;

public class ClusterConfigTests
{
    [Fact]
    public void Parses_the_original_three_node_config()
    {
        var config = ClusterConfig.Parse(["0 127.0.0.1 50000", "1 127.0.0.1 50001", "", "# comment", "2 127.0.0.1 50002"]);

        Assert.Equal([0, 1, 2], config.Nodes.Select(n => n.Id));
        Assert.Equal(new NodeAddress(1, "127.0.0.1", 50001), config[1]);
        Assert.Null(config.Find(7));
    }

    [Theory]
    [InlineData("0 127.0.0.1", "config.conf:1: expected 'ID HOST PORT', found 2 field(s)")]
    [InlineData("x 127.0.0.1 50000", "config.conf:1: node id 'x' is not a non-negative integer")]
    [InlineData("0 127.0.0.1 70000", "config.conf:1: port '70000' is not a number from 1 to 65535")]
    [InlineData("0 bad_host! 50000", "config.conf:1: 'bad_host!' is not a valid host name or address")]
    public void A_malformed_line_is_named_with_its_problem(string line, string expected)
    {
        var error = Assert.Throws<ConfigException>(() => ClusterConfig.Parse([line]));
        Assert.StartsWith(expected, error.Message);
    }

    [Fact]
    public void Duplicate_ids_and_addresses_are_rejected_with_the_line_number()
    {
        var dupId = Assert.Throws<ConfigException>(() => ClusterConfig.Parse(["0 127.0.0.1 50000", "0 127.0.0.1 50001"]));
        Assert.Equal("config.conf:2: duplicate node id 0", dupId.Message);

        var dupPort = Assert.Throws<ConfigException>(() => ClusterConfig.Parse(["0 127.0.0.1 50000", "", "1 127.0.0.1 50000"]));
        Assert.Equal("config.conf:3: 127.0.0.1:50000 is already used by node 0", dupPort.Message);
    }

    [Fact]
    public void An_IPv6_address_is_taken_bare_or_in_brackets_and_bracketed_wherever_a_port_follows_it()
    {
        var config = ClusterConfig.Parse(["0 ::1 50000", "1 [fd00::5] 50001", "2 db3.example 50002"]);

        Assert.Equal(new NodeAddress(1, "fd00::5", 50001), config[1]);
        Assert.Equal(["[::1]:50000", "[fd00::5]:50001", "db3.example:50002"], config.Nodes.Select(n => n.Authority));
        Assert.Equal("http://[::1]:50000", config[0].HttpUri);
        Assert.Equal(new Uri("http://[::1]:50000/"), new Uri(config[0].HttpUri + "/"));
        Assert.Equal("1 [fd00::5]:50001", config[1].ToString());

        var dup = Assert.Throws<ConfigException>(() => ClusterConfig.Parse(["0 ::1 50000", "1 [::1] 50000"]));
        Assert.Equal("config.conf:2: [::1]:50000 is already used by node 0", dup.Message);
        Assert.StartsWith("config.conf:1: '[db1]' is not a valid host name or address",
            Assert.Throws<ConfigException>(() => ClusterConfig.Parse(["0 [db1] 50000"])).Message);
    }

    [Fact]
    public void An_empty_config_is_an_error()
    {
        var error = Assert.Throws<ConfigException>(() => ClusterConfig.Parse(["", "# nothing"]));
        Assert.Contains("no nodes listed", error.Message);
    }
}
