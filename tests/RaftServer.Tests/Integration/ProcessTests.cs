using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using Grpc.Core;
using RaftPS.Protocol;
using RaftServer.Transport;

namespace RaftServer.Tests.Integration;

/// <summary>The process: bad command lines and configs, ports in use, no quorum, a damaged log.</summary>
[Collection(ProcessCollection.Name)]
public sealed class ProcessTests : IDisposable
{
    private readonly List<string> _dirs = new();

    public void Dispose()
    {
        foreach (var d in _dirs)
            try { Directory.Delete(d, true); } catch (IOException) { }
    }

    private string TempDir(string name)
    {
        var dir = ServerProcess.TempDir(name);
        _dirs.Add(dir);
        return dir;
    }

    private static readonly TimeSpan ExitWait = TimeSpan.FromSeconds(30);

    private async Task<(int? Code, string Output)> RunToExit(string dir, params string[] args)
    {
        using var p = ServerProcess.Start(-1, dir, args);
        var code = await p.WaitForExit(ExitWait);
        return (code, p.Output);
    }

    [Fact]
    public async Task A_malformed_config_names_the_line_and_exits_2()
    {
        var dir = TempDir("badconf");
        File.WriteAllText(Path.Combine(dir, "config.conf"), "0 127.0.0.1 50000\n1 127.0.0.1\n");
        var (code, output) = await RunToExit(dir, "0");
        Assert.Equal(2, code);
        Assert.Contains("config.conf:2: expected 'ID HOST PORT'", output);
    }

    [Theory]
    [InlineData("duplicate")]
    [InlineData("unknown-id")]
    [InlineData("missing-file")]
    public async Task Config_problems_exit_2_with_one_clear_line(string what)
    {
        var dir = TempDir("conf");
        var text = what == "duplicate" ? "0 127.0.0.1 50000\n0 127.0.0.1 50001\n" : "0 127.0.0.1 50000\n1 127.0.0.1 50001\n";
        if (what != "missing-file") File.WriteAllText(Path.Combine(dir, "config.conf"), text);
        var (code, output) = await RunToExit(dir, what == "unknown-id" ? "7" : "0");
        Assert.Equal(2, code);
        Assert.Contains(what switch
        {
            "duplicate" => "config.conf:2: duplicate node id 0",
            "unknown-id" => "node 7 is not in config.conf (ids: 0, 1)",
            _ => "config.conf: file not found",
        }, output);
    }

    [Theory]
    [InlineData("", "the node id is missing")]
    [InlineData("x", "node id 'x' is not a non-negative integer")]
    [InlineData("0 --heartbeat-ms abc", "--heartbeat-ms: 'abc' is not a number")]
    [InlineData("0 --bogus", "unknown option '--bogus'")]
    public async Task Bad_command_lines_exit_2_with_usage(string args, string expected)
    {
        var dir = TempDir("args");
        var (code, output) = await RunToExit(dir, args.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(2, code);
        Assert.Contains(expected, output);
        Assert.Contains("usage: RaftServer ID", output);
    }

    [Fact]
    public async Task A_port_in_use_exits_1_naming_the_port()
    {
        var dir = TempDir("port");
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            ServerProcess.WriteConfig(dir, [(0, port)]);
            var (code, output) = await RunToExit(dir, "0");
            Assert.Equal(1, code);
            Assert.Contains($"cannot listen on 127.0.0.1:{port} (node 0): the port is already in use", output);
        }
        finally
        {
            listener.Stop();
        }
    }

    [Fact]
    public async Task A_malformed_peer_frame_closes_that_connection_with_a_warning_and_the_cluster_goes_on()
    {
        await using var cluster = await LocalCluster.StartAsync(3, "badpeer");
        var leader = await cluster.WaitForLeaderAsync();
        await cluster.SetAsync(leader, "before", "1");
        var follower = cluster.Ids.First(id => id != leader);

        // The node loop reads peer connections itself: a frame whose length is out of range must
        // close that connection, not the loop.
        using (var socket = new Socket(SocketType.Stream, ProtocolType.Tcp))
        {
            await socket.ConnectAsync(IPAddress.Loopback, cluster.Ports[follower]);
            // The preface and a hello (of a node the configuration does not list) reach the loop; the frame does not.
            await socket.SendAsync((byte[])[.. PeerWire.Preface, .. PeerWire.Hello(0, 9), 0xFF, 0xFF, 0xFF, 0x7F, 0]);
            Assert.True(await Transport.PeerSortingListenerTests.ClosedByServerAsync(socket));
        }
        Assert.True(await cluster.Process(follower).WaitForOutput("Closed a peer connection", LocalCluster.Patience), cluster.Outputs());

        await cluster.SetAsync(leader, "after", "2");
        Assert.Equal("2", await cluster.GetAsync(follower, "after"));
        Assert.False(cluster.Process(follower).HasExited);
    }

    [Fact]
    public async Task Without_a_quorum_there_is_no_leader_and_calls_fail_fast_with_Unavailable()
    {
        await using var cluster = new LocalCluster(3, "noquorum");
        var node = cluster.Start(0);
        Assert.True(await node.WaitForOutput("The server starts at", LocalCluster.Patience), node.Output);
        var client = cluster.Client(0);
        await Task.Delay(700); // past an election timeout: still no leader

        async Task Unavailable(Func<Task> call, string detail)
        {
            var e = await Assert.ThrowsAsync<RpcException>(call);
            Assert.Equal(StatusCode.Unavailable, e.StatusCode);
            Assert.Contains(detail, e.Status.Detail);
            Assert.Null(e.Trailers.GetValue("raftps-leader"));
        }
        await Unavailable(() => client.GetLeaderAsync(new GetLeaderRequest()).ResponseAsync, "no leader");
        await Unavailable(() => client.SetAsync(new SetRequest { Key = "k", Value = ByteString.CopyFromUtf8("v") },
            deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync, "no leader");
        await Unavailable(() => client.GetAsync(new GetRequest { Key = "k" }, deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync, "leader");
        Assert.False((await client.GetAsync(new GetRequest { Key = "k", Stale = true })).Found);
        var status = await client.StatusAsync(new StatusRequest());
        Assert.NotEqual(Role.Leader, status.Role);
        Assert.Null(status.Leader);
    }

    [Fact]
    public async Task A_torn_tail_is_truncated_with_a_warning_and_damage_before_the_tail_refuses_to_start()
    {
        await using var cluster = await LocalCluster.StartAsync(1, "torn");
        await cluster.WaitForLeaderAsync();
        for (var i = 0; i < 20; i++) await cluster.SetAsync(0, $"t/{i}", $"{i}");
        cluster.Kill(0);

        var segment = Directory.GetFiles(Path.Combine(cluster.DataDir(0), "wal"), "*.wal").Order().Last();
        var intact = Storage.WalTestFiles.RecordsEnd(segment);
        // A record cut short by a crash: a valid header announcing 100 bytes, then only 10 of
        // them, written where the records end. The segment was made with zeros, so the rest of
        // the 100 reads as zeros (a bad CRC) with only zeros after it: a torn tail.
        using (var f = new FileStream(segment, FileMode.Open, FileAccess.Write))
        {
            f.Seek(intact, SeekOrigin.Begin);
            var header = new byte[12];
            BitConverter.TryWriteBytes(header.AsSpan(0), 100u);
            BitConverter.TryWriteBytes(header.AsSpan(4), ~100u);
            f.Write(header);
            f.Write(new byte[10]);
        }
        var node = cluster.Start(0);
        Assert.True(await node.WaitForOutput("truncating", LocalCluster.Patience), node.Output);
        Assert.Contains(segment, node.Output);
        await cluster.WaitForLeaderAsync();
        for (var i = 0; i < 20; i++) Assert.Equal($"{i}", await cluster.GetAsync(0, $"t/{i}"));
        cluster.Kill(0);
        Assert.True(Storage.WalTestFiles.RecordsEnd(segment) >= intact);

        // Damage in the middle of the log (a flipped byte in an early record) is not a torn tail.
        var bytes = File.ReadAllBytes(segment);
        var offset = Storage.WalTestFiles.RecordsEnd(bytes) / 2;
        bytes[offset] ^= 0xFF;
        File.WriteAllBytes(segment, bytes);
        using var broken = ServerProcess.Start(0, cluster.Dir, "0", "--config", cluster.ConfigPath);
        Assert.Equal(1, await broken.WaitForExit(TimeSpan.FromSeconds(30)));
        Assert.Contains(segment, broken.Output);
        Assert.Contains("offset ", broken.Output);
        Assert.Contains("refusing to start", broken.Output);
    }
}
