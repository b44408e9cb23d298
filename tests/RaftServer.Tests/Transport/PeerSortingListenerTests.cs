using System.Net.Sockets;
using RaftServer.Transport;
using P = RaftPS.Protocol;

namespace RaftServer.Tests.Transport;

/// <summary>The node's one port: peer message connections beside HTTP/2 (SnapshotTestHost is set up
/// as ServerHost is; its snapshot tests cover the HTTP/2 side on the same port).</summary>
public sealed class PeerSortingListenerTests
{
    private static byte[] Frame(long term)
    {
        var batch = new P.MessageBatch { From = 1 };
        batch.Messages.Add(new P.RaftMessage { Type = P.MessageType.Heartbeat, From = 1, To = 2, Term = term });
        var buffer = new byte[16];
        var n = PeerWire.Write(batch, ref buffer);
        return buffer.AsSpan(0, n).ToArray();
    }

    /// <summary>The preface and the hello of node 1 of no known cluster: what a peer sends before its frames.</summary>
    private static byte[] Opening(ulong clusterId = 0, int from = 1) => [.. PeerWire.Preface, .. PeerWire.Hello(clusterId, from)];

    private static async Task<Socket> ConnectAsync(SnapshotTestHost host)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync("127.0.0.1", host.Port);
        return socket;
    }

    /// <summary>True once the server has closed the connection (a receive returns 0 or fails); what it
    /// sent before (its hello) is skipped.</summary>
    internal static async Task<bool> ClosedByServerAsync(Socket socket)
    {
        var buffer = new byte[256];
        try
        {
            using var patience = new CancellationTokenSource(SnapshotTestHost.Patience);
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, patience.Token) > 0) { }
            return true;
        }
        catch (SocketException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    [Fact]
    public async Task Batches_arrive_in_order_however_the_bytes_are_split()
    {
        await using var host = await SnapshotTestHost.StartAsync(new FakeSnapshotSink(), new TestLogger());
        using var socket = await ConnectAsync(host);
        var bytes = Opening().Concat(Frame(3)).Concat(Frame(4)).Concat(Frame(5)).ToArray();
        // A byte at a time for the preface and the first frame, then the rest at once.
        var first = Opening().Length + Frame(3).Length;
        for (var i = 0; i < first; i++) await socket.SendAsync(bytes.AsMemory(i, 1));
        await socket.SendAsync(bytes.AsMemory(first));

        var terms = new List<long>();
        while (terms.Count < 3)
        {
            var batch = await host.Batches.Reader.ReadAsync().AsTask().WaitAsync(SnapshotTestHost.Patience);
            terms.AddRange(batch.Messages.Select(m => m.Term));
        }
        Assert.Equal([3L, 4L, 5L], terms);
    }

    [Fact]
    public async Task A_malformed_frame_closes_that_connection_only()
    {
        var logger = new TestLogger();
        await using var host = await SnapshotTestHost.StartAsync(new FakeSnapshotSink(), logger);
        using (var bad = await ConnectAsync(host))
        {
            await bad.SendAsync(Opening().Concat(new byte[] { 4, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF }).ToArray());
            Assert.True(await ClosedByServerAsync(bad));
        }
        Assert.Contains(logger.Lines, l => l.StartsWith("Warning: Closed a peer connection", StringComparison.Ordinal));

        using var good = await ConnectAsync(host);
        await good.SendAsync(Opening().Concat(Frame(9)).ToArray());
        var batch = await host.Batches.Reader.ReadAsync().AsTask().WaitAsync(SnapshotTestHost.Patience);
        Assert.Equal(9, Assert.Single(batch.Messages).Term);
    }

    [Fact]
    public async Task A_wrong_preface_is_refused()
    {
        await using var host = await SnapshotTestHost.StartAsync(new FakeSnapshotSink(), new TestLogger());
        using var socket = await ConnectAsync(host);
        await socket.SendAsync("RAFTPS-PEER/9\n"u8.ToArray().Concat(Frame(1)).ToArray());
        Assert.True(await ClosedByServerAsync(socket));
        Assert.Equal(0, host.Batches.Reader.Count);
    }

    [Fact]
    public async Task A_suspended_node_closes_peer_connections_without_delivering()
    {
        await using var host = await SnapshotTestHost.StartAsync(new FakeSnapshotSink(), new TestLogger());
        host.Suspended = true;
        using var socket = await ConnectAsync(host);
        await socket.SendAsync(Opening().Concat(Frame(1)).ToArray());
        Assert.True(await ClosedByServerAsync(socket));
        Assert.Equal(0, host.Batches.Reader.Count);
    }
}
