using Google.Protobuf;
using Grpc.Core;
using RaftServer.Cluster;
using RaftServer.Transport;
using P = RaftPS.Protocol;

namespace RaftServer.Tests.Transport;

/// <summary>
/// Snapshot uploads are bounded before anything is stored: the size the header announces, one
/// upload at a time per peer, and the sender's cluster (docs/security.md, "Snapshot uploads").
/// </summary>
public sealed class SnapshotUploadBoundsTests
{
    private const ulong OurCluster = 0x1111_2222_3333_4444;
    private const ulong OtherCluster = 0x5555_6666_7777_8888;

    private static P.SnapshotHeader Header(long total, int from = 1, ulong clusterId = ClusterIdentity.Unknown)
    {
        var h = new P.SnapshotHeader { From = from, To = 2, Term = 4, SnapshotIndex = 10, SnapshotTerm = 3, TotalLength = total, ClusterId = clusterId };
        h.Members.Add([1, 2, 3]);
        return h;
    }

    private static P.SnapshotChunk Chunk(long offset, int length, bool done = false, P.SnapshotHeader? header = null) => new()
    {
        Header = header, Offset = offset, Data = ByteString.CopyFrom(new byte[length]), Done = done,
    };

    private static async Task<RpcException?> SendAsync(SnapshotTestHost host, params P.SnapshotChunk[] chunks)
    {
        var client = host.Client(out var channel);
        using (channel)
        {
            using var call = client.InstallSnapshot(deadline: DateTime.UtcNow + SnapshotTestHost.Patience);
            try
            {
                foreach (var c in chunks) await call.RequestStream.WriteAsync(c);
                await call.RequestStream.CompleteAsync();
            }
            catch (Exception e) when (e is RpcException or InvalidOperationException)
            {
                // answered before we were done writing: the answer is in ResponseAsync
            }
            try
            {
                await call.ResponseAsync;
                return null;
            }
            catch (RpcException e)
            {
                return e;
            }
        }
    }

    [Fact]
    public async Task An_upload_larger_than_the_limit_is_refused_before_anything_is_stored()
    {
        var logger = new TestLogger();
        await using var host = await SnapshotTestHost.StartAsync(new FakeSnapshotSink(), logger, gate: new SnapshotUploadGate(1 << 20));

        var error = await SendAsync(host, Chunk(0, 1000, header: Header((1 << 20) + 1)));

        Assert.Equal(StatusCode.ResourceExhausted, error?.StatusCode);
        Assert.Contains("--max-snapshot-bytes", error!.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(0, host.Sink.Count);
        Assert.Empty(host.Posted);
        Assert.Contains(logger.Lines, l => l.Contains("Refused a snapshot from node 1", StringComparison.Ordinal));

        // At the limit it is taken.
        Assert.Null(await SendAsync(host, Chunk(0, 1000, done: true, header: Header(1000))));
        Assert.Equal(1, host.Sink.Count);
    }

    [Fact]
    public async Task A_newer_upload_from_the_same_peer_replaces_one_that_went_silent()
    {
        await using var host = await SnapshotTestHost.StartAsync(new FakeSnapshotSink(), new TestLogger(), gate: new SnapshotUploadGate(1 << 20));
        var client = host.Client(out var channel);
        using (channel)
        {
            // A stream that sends its first chunk and then nothing: it used to hold the peer's place
            // until the connection died, and every real upload from that peer was refused meanwhile.
            using var silent = client.InstallSnapshot(deadline: DateTime.UtcNow + SnapshotTestHost.Patience);
            await silent.RequestStream.WriteAsync(Chunk(0, 10, header: Header(20)));
            await host.Sink.Begun.Reader.ReadAsync().AsTask().WaitAsync(SnapshotTestHost.Patience);

            Assert.Null(await SendAsync(host, Chunk(0, 20, done: true, header: Header(20))));
            Assert.Single(host.Posted);

            var e = await Assert.ThrowsAsync<RpcException>(() => silent.ResponseAsync.WaitAsync(SnapshotTestHost.Patience));
            Assert.Equal(StatusCode.Cancelled, e.StatusCode);
        }

        // Another peer's upload is its own.
        Assert.Null(await SendAsync(host, Chunk(0, 20, done: true, header: Header(20, from: 3))));
    }

    [Fact]
    public async Task A_snapshot_from_another_cluster_is_refused_naming_both_ids()
    {
        var logger = new TestLogger();
        await using var host = await SnapshotTestHost.StartAsync(new FakeSnapshotSink(), logger, clusterId: OurCluster);

        var error = await SendAsync(host, Chunk(0, 20, done: true, header: Header(20, clusterId: OtherCluster)));

        Assert.Equal(StatusCode.PermissionDenied, error?.StatusCode);
        Assert.Contains(ClusterIdentity.Format(OtherCluster), error!.Status.Detail, StringComparison.Ordinal);
        Assert.Contains(ClusterIdentity.Format(OurCluster), error.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(0, host.Sink.Count);
        Assert.Empty(host.Posted);

        // The same cluster, or a sender that knows no id yet, is taken.
        Assert.Null(await SendAsync(host, Chunk(0, 20, done: true, header: Header(20, clusterId: OurCluster))));
        Assert.Null(await SendAsync(host, Chunk(0, 20, done: true, header: Header(20, clusterId: ClusterIdentity.Unknown))));
    }

    [Fact]
    public async Task A_received_snapshot_does_not_give_a_node_that_knows_none_a_cluster_id_before_the_core_installs_it()
    {
        // The id comes with the install (SnapshotClusterIdTests): the core may refuse this snapshot.
        await using var host = await SnapshotTestHost.StartAsync(new FakeSnapshotSink(), new TestLogger());
        Assert.False(host.Identity.Known);

        Assert.Null(await SendAsync(host, Chunk(0, 20, done: true, header: Header(20, clusterId: OurCluster))));

        Assert.False(host.Identity.Known);
        Assert.Single(host.Posted);
    }
}
