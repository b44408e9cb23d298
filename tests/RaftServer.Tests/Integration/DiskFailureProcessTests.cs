using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using RaftPS.Protocol;
using RaftServer.Api;
using RaftServer.Hosting;
using Xunit.Abstractions;

namespace RaftServer.Tests.Integration;

/// <summary>
/// A real server whose disk fails: every fsync failing after a point (a dying disk, through the
/// test-only switch <see cref="UnsafeTestSwitches.FailFsyncAfterVariable"/>), or its data directory
/// on a small tmpfs that fills up (a real ENOSPC). One voter, so each acknowledgement rests on this
/// node's own fsync. The node must exit with the disk-error code and one FATAL line, and a restart
/// on a healthy disk must find every write it acknowledged.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class DiskFailureProcessTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly string _dir = ServerProcess.TempDir("diskfail");
    private string? _mounted;

    public void Dispose()
    {
        if (_mounted is not null) Run("umount", "-l", _mounted);
        try { Directory.Delete(_dir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static int Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        p.WaitForExit();
        return p.ExitCode;
    }

    private sealed record Node(ServerProcess Process, RaftClient.RaftClientClient Client, GrpcChannel Channel) : IDisposable
    {
        public void Dispose()
        {
            Channel.Dispose();
            Process.Dispose();
        }
    }

    private Node Start(int port, string dataDir, Dictionary<string, string>? environment = null)
    {
        var config = ServerProcess.WriteConfig(_dir, [(0, port)]);
        var process = ServerProcess.StartIn(null, 0, _dir, ["0", "--config", config, "--data-dir", dataDir, "--quiet"], environment);
        var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}");
        return new Node(process, new RaftClient.RaftClientClient(channel), channel);
    }

    private static async Task WaitForLeader(Node node)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                var r = await node.Client.GetLeaderAsync(new GetLeaderRequest(), deadline: DateTime.UtcNow.AddSeconds(2));
                if (r.Leader.Id == 0) return;
            }
            catch (RpcException) when (sw.Elapsed < Patience && !node.Process.HasExited) { }
            Assert.True(sw.Elapsed < Patience && !node.Process.HasExited, $"no leader\n{node.Process.Output}");
            await Task.Delay(50);
        }
    }

    /// <summary>Writes keys one at a time until the node fails; returns those it acknowledged.</summary>
    private static async Task<List<string>> WriteUntilItFails(Node node, int valueBytes)
    {
        var acknowledged = new List<string>();
        var value = ByteString.CopyFrom(new byte[valueBytes]);
        for (var i = 0; i < 100_000; i++)
        {
            var key = $"key-{i:D6}";
            try
            {
                await node.Client.SetAsync(new SetRequest { Key = key, Value = value }, deadline: DateTime.UtcNow.AddSeconds(10));
                acknowledged.Add(key);
            }
            catch (RpcException)
            {
                return acknowledged;
            }
        }
        throw new InvalidOperationException("the disk never failed");
    }

    private async Task CheckStoppedAndRestart(Node failed, List<string> acknowledged, string reason, int port, string dataDir)
    {
        var code = await failed.Process.WaitForExit(Patience);
        output.WriteLine(failed.Process.Output);
        Assert.Equal(ServerHost.DiskFailureExitCode, code);
        Assert.Contains("fatal: disk error, the node stops:", failed.Process.Output);
        Assert.Contains(reason, failed.Process.Output);
        Assert.True(acknowledged.Count > 0, "nothing was written before the failure");
        failed.Dispose();

        using var restarted = Start(port, dataDir);
        await WaitForLeader(restarted);
        foreach (var key in acknowledged)
        {
            var r = await restarted.Client.GetAsync(new GetRequest { Key = key }, deadline: DateTime.UtcNow.AddSeconds(10));
            Assert.True(r.Found, $"{key} was acknowledged before the disk failed and is lost after the restart");
        }
        output.WriteLine($"{acknowledged.Count} acknowledged writes, all there after the restart");
    }

    [Fact]
    public async Task A_failing_fsync_stops_the_node_with_exit_code_3_and_a_restart_loses_nothing_acknowledged()
    {
        var port = ServerProcess.FreePorts(1)[0];
        var dataDir = Path.Combine(_dir, "data");
        var node = Start(port, dataDir, new() { [UnsafeTestSwitches.FailFsyncAfterVariable] = "60" });
        await WaitForLeader(node);
        var acknowledged = await WriteUntilItFails(node, 100);
        await CheckStoppedAndRestart(node, acknowledged, "Input/output error", port, dataDir);
    }

    [Fact]
    public async Task A_full_disk_stops_the_node_with_exit_code_3_and_a_restart_with_space_loses_nothing_acknowledged()
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root")
        {
            output.WriteLine("skipped: mounting a tmpfs needs Linux and root");
            return;
        }
        var mount = Path.Combine(_dir, "small-disk");
        Directory.CreateDirectory(mount);
        // Two 4 MiB log segments (the current one and the next, made ahead) and a few MiB more.
        Assert.Equal(0, Run("mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", mount));
        _mounted = mount;
        var port = ServerProcess.FreePorts(1)[0];
        var dataDir = Path.Combine(mount, "data");

        var node = Start(port, dataDir);
        await WaitForLeader(node);
        var acknowledged = await WriteUntilItFails(node, 64 << 10);
        await node.Process.WaitForExit(Patience);

        // The operator makes room (here: a larger tmpfs), and starts the node again.
        Assert.Equal(0, Run("mount", "-o", "remount,size=64m", mount));
        await CheckStoppedAndRestart(node, acknowledged, "No space left on device", port, dataDir);
    }
}
