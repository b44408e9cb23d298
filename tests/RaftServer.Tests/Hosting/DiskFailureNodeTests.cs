using System.Diagnostics;
using System.Text;
using RaftServer.Cluster;
using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.StateMachine;
using RaftServer.Storage;
using RaftServer.Tests.Storage;

namespace RaftServer.Tests.Hosting;

/// <summary>
/// A whole node in-process (the real loop, driver, log and snapshot store; a fake transport) on a
/// <see cref="FaultyDisk"/>: a failing fsync or a full disk stops the node with one FATAL line,
/// no write it did not make durable is acknowledged, and a restart on a healthy disk finds every
/// acknowledged write. One voter, so an acknowledgement rests on this node's fsync alone.
/// </summary>
public sealed class DiskFailureNodeTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "raftps-tests", "disknode-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly ListLogger _logger = new();
    private readonly FaultyDisk _disk = new();

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private sealed class Node(DataDirectory dir, NodeStorage storage, NodeLoop loop, TaskCompletionSource<Exception> fatal) : IDisposable
    {
        public NodeLoop Loop => loop;
        public Task<Exception> Fatal => fatal.Task;

        public void Dispose()
        {
            loop.Dispose();
            storage.Dispose();
            dir.Dispose();
        }
    }

    private Node Start(IDisk disk)
    {
        var dir = DataDirectory.Open(_dir);
        var storage = NodeStorage.Open(dir, _logger, out var recovered, disk);
        var journal = new Journal();
        var fatal = new TaskCompletionSource<Exception>(TaskCreationOptions.RunContinuationsAsynchronously);
        var clock = Stopwatch.StartNew();
        var sockets = new FakeSockets();
        var loop = new NodeLoop(sockets, 10, () => clock.ElapsedMilliseconds, _logger, e => fatal.TrySetResult(e));
        var membership = new Membership(1, new MemberSet([new Member(new NodeAddress(1, "127.0.0.1", 5001))]));
        var driver = new RaftDriver(
            () => new RaftOptions { Id = 1, Bootstrap = Configuration.FromVoters([1]), ElectionTicks = 5, Random = new Random(3) },
            membership, storage, new FakeSender(journal), sockets, new FakeSnapshots(journal), storage.Reopen,
            DriverTimeouts.For(10, 5), () => clock.ElapsedMilliseconds, _logger);
        loop.Start(driver, recovered);
        return new Node(dir, storage, loop, fatal);
    }

    private static async Task WaitForLeader(NodeLoop loop)
    {
        var sw = Stopwatch.StartNew();
        while (!loop.View.IsLeader)
        {
            Assert.True(sw.Elapsed < Patience, "no leader");
            await Task.Delay(10);
        }
    }

    private static byte[] Set(string key, string value) => Command.Encode(CommandOp.Set, 0, 0, 0, key, Encoding.UTF8.GetBytes(value));

    /// <summary>The state a restart on the real disk recovers: the snapshot's store with the logged entries applied.</summary>
    private KvStore Restarted()
    {
        using var dir = DataDirectory.Open(_dir);
        using var storage = NodeStorage.Open(dir, _logger, out var recovered, Disk.Real);
        var store = recovered.Store;
        foreach (var e in recovered.State.Entries)
            if (e.Index > store.AppliedIndex) store.Apply(e);
        return store;
    }

    [Theory]
    [InlineData(DiskStep.Fsync, FaultyDisk.EIO)]
    [InlineData(DiskStep.Write, FaultyDisk.ENOSPC)]
    public async Task A_failing_disk_stops_the_node_without_acknowledging_and_a_restart_loses_nothing_acknowledged(DiskStep step, int errno)
    {
        var acknowledged = new List<string>();
        using (var node = Start(_disk))
        {
            await WaitForLeader(node.Loop);
            for (var i = 0; i < 50; i++)
            {
                var outcome = await node.Loop.Propose(Set($"before-{i}", "v"));
                Assert.Equal(OutcomeCode.Ok, outcome.Code);
                acknowledged.Add($"before-{i}");
            }

            // The loop thread's next write or fsync fails (not the segment preparer's, on its own thread).
            _disk.Fail(step, errno, _ => Thread.CurrentThread.Name == "raft-loop");
            var after = Enumerable.Range(0, 20).Select(i => node.Loop.Propose(Set($"after-{i}", "v"))).ToArray();

            var fatal = await node.Fatal.WaitAsync(Patience);
            Assert.IsType<DiskFailureException>(fatal);
            var outcomes = await Task.WhenAll(after).WaitAsync(Patience);
            Assert.All(outcomes, o => Assert.NotEqual(OutcomeCode.Ok, o.Code));
            // A call made after the loop is gone is answered at once, not left waiting.
            var late = await node.Loop.Propose(Set("late", "v")).WaitAsync(Patience);
            Assert.Equal(OutcomeCode.Unavailable, late.Code);
            Assert.Contains(_logger.Lines, l => l.StartsWith("Critical:disk error, the node stops:", StringComparison.Ordinal)
                && l.Contains(errno == FaultyDisk.EIO ? "Input/output error" : "No space left on device"));
        }

        var store = Restarted();
        foreach (var key in acknowledged) Assert.True(store.TryGet(key, out _), $"{key} was acknowledged and is lost");
    }
}
