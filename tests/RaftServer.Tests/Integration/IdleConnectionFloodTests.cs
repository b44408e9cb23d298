using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using RaftServer.Transport;
using Xunit.Abstractions;

namespace RaftServer.Tests.Integration;

/// <summary>
/// 10,000 connections opened to a node and left silent (docs/security.md, "Peer connections"): the
/// node sorts them on one thread with a cap, closes the oldest beyond it at once and the rest after
/// the sort timeout, and serves writes throughout.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed partial class IdleConnectionFloodTests(ITestOutputHelper output)
{
    private const int Wanted = 10_000;

    /// <summary>The soft limit on open files of this process (children inherit it), or null when it cannot be read.</summary>
    private static long? OpenFilesLimit()
    {
        if (!OperatingSystem.IsLinux()) return null;
        foreach (var line in File.ReadLines("/proc/self/limits"))
        {
            if (!line.StartsWith("Max open files", StringComparison.Ordinal)) continue;
            var m = Limit().Match(line);
            return m.Success ? long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : null;
        }
        return null;
    }

    [GeneratedRegex(@"Max open files\s+(\d+)")]
    private static partial Regex Limit();

    [Fact]
    public async Task Ten_thousand_silent_connections_are_capped_and_closed_while_the_cluster_serves_writes()
    {
        // This process holds every client socket; the node holds at most the sorter's cap of them.
        var limit = OpenFilesLimit() ?? 1024;
        var count = (int)Math.Min(Wanted, limit - 2_000);
        if (count < Wanted)
            output.WriteLine($"opening {count} connections, not {Wanted}: the open-files limit (ulimit -n) is {limit}");
        Assert.True(count > PeerSortingListener.MaxPending * 2, $"ulimit -n {limit} leaves too few descriptors for this test");

        await using var cluster = await LocalCluster.StartAsync(3, "flood");
        var leader = await cluster.WaitForLeaderAsync();
        await cluster.SetAsync(leader, "before", "0");
        var sockets = new List<Socket>(count);
        var writes = Stopwatch.StartNew();
        var slowest = TimeSpan.Zero;
        var mostThreads = 0;
        try
        {
            const int Batch = 250;
            for (var opened = 0; opened < count; opened += Batch)
            {
                var batch = Enumerable.Range(0, Math.Min(Batch, count - opened)).Select(_ => new Socket(SocketType.Stream, ProtocolType.Tcp)).ToList();
                sockets.AddRange(batch);
                await Task.WhenAll(batch.Select(s => s.ConnectAsync(IPAddress.Loopback, cluster.Ports[leader]))).WaitAsync(LocalCluster.Patience);
                // The cluster serves writes on the flooded node while the flood goes on.
                var write = Stopwatch.StartNew();
                await cluster.SetAsync(leader, "during", $"{opened}");
                if (write.Elapsed > slowest) slowest = write.Elapsed;
                if (Threads(cluster.Process(leader).Pid) is { } threads) mostThreads = Math.Max(mostThreads, threads);
            }
            output.WriteLine($"{count} connections opened in {writes.ElapsedMilliseconds} ms; slowest write meanwhile {slowest.TotalMilliseconds:F0} ms; " +
                $"at most {mostThreads} threads in the node");
            // Sorting takes no thread per connection (a node at rest runs a few dozen).
            Assert.InRange(mostThreads, 0, 200);

            // Every one of them is closed by the node: the oldest beyond the cap at once, the rest
            // after the sort timeout.
            var clock = Stopwatch.StartNew();
            var open = new List<Socket>(sockets);
            while (open.Count > 0 && clock.Elapsed < PeerSortingListener.SortTimeout + LocalCluster.Patience)
            {
                open.RemoveAll(ClosedByPeer);
                if (open.Count > 0) await Task.Delay(100);
            }
            Assert.True(open.Count == 0, $"{open.Count} of {count} connections still open after {clock.Elapsed}");
            output.WriteLine($"all closed {clock.ElapsedMilliseconds} ms after the last was opened");
            Assert.True(await cluster.Process(leader).WaitForOutput("had not said what they are", LocalCluster.Patience), cluster.Outputs());

            await cluster.SetAsync(leader, "after", "1");
            foreach (var id in cluster.Ids) Assert.Equal("1", await cluster.GetAsync(id, "after"));
            Assert.False(cluster.Process(leader).HasExited);
        }
        finally
        {
            foreach (var s in sockets) s.Dispose();
        }
    }

    /// <summary>The threads of process <paramref name="pid"/> now (Linux), or null.</summary>
    private static int? Threads(int pid)
    {
        if (!OperatingSystem.IsLinux()) return null;
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("Threads:", StringComparison.Ordinal)) return int.Parse(line.AsSpan(8).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        return null;
    }

    /// <summary>The node closed the connection: it reads as the end of the stream, or was reset.</summary>
    private static bool ClosedByPeer(Socket socket)
    {
        try
        {
            if (!socket.Poll(0, SelectMode.SelectRead)) return false;
            return socket.Receive(new byte[1], SocketFlags.Peek) == 0;
        }
        catch (SocketException)
        {
            return true;
        }
    }
}
