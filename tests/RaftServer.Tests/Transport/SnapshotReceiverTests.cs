using Google.Protobuf;
using Grpc.Core;
using P = RaftPS.Protocol;

namespace RaftServer.Tests.Transport;

/// <summary>
/// The follower's InstallSnapshot against hand-made chunk streams: every way a stream can be
/// wrong ends the call with a status, discards what was stored and posts nothing.
/// </summary>
public sealed class SnapshotReceiverTests : IAsyncLifetime
{
    private SnapshotTestHost _host = null!;
    private P.RaftPeer.RaftPeerClient _client = null!;
    private IDisposable _channel = null!;

    public async Task InitializeAsync()
    {
        _host = await SnapshotTestHost.StartAsync(new FakeSnapshotSink(), new TestLogger());
        _client = _host.Client(out _channel);
    }

    public async Task DisposeAsync()
    {
        _channel.Dispose();
        await _host.DisposeAsync();
    }

    private static P.SnapshotHeader Header(long total, int from = 1, int to = 2)
    {
        var h = new P.SnapshotHeader { From = from, To = to, Term = 4, SnapshotIndex = 10, SnapshotTerm = 3, TotalLength = total };
        h.Members.Add([1, 2, 3]);
        return h;
    }

    private static P.SnapshotChunk Chunk(long offset, int length, bool done = false, P.SnapshotHeader? header = null) => new()
    {
        Header = header, Offset = offset, Data = ByteString.CopyFrom(new byte[length]), Done = done,
    };

    /// <summary>Sends the chunks and returns the call's outcome (null: acknowledged).</summary>
    private async Task<(RpcException? Error, P.SnapshotAck? Ack)> Send(params P.SnapshotChunk[] chunks)
    {
        using var call = _client.InstallSnapshot(deadline: DateTime.UtcNow + SnapshotTestHost.Patience);
        try
        {
            foreach (var c in chunks) await call.RequestStream.WriteAsync(c);
            await call.RequestStream.CompleteAsync();
        }
        catch (Exception e) when (e is RpcException or InvalidOperationException)
        {
            // The follower answered before we were done writing: its answer is in ResponseAsync.
        }
        try
        {
            return (null, await call.ResponseAsync);
        }
        catch (RpcException e)
        {
            return (e, null);
        }
    }

    [Fact]
    public async Task A_well_formed_stream_is_acknowledged_and_posted()
    {
        var (error, ack) = await Send(Chunk(0, 10, header: Header(25)), Chunk(10, 10), Chunk(20, 5, done: true));

        Assert.Null(error);
        Assert.Equal(25, ack!.Received);
        var upload = Assert.Single(_host.Sink.All);
        Assert.Equal(3, upload.Writes);
        Assert.Same(upload.Handle, Assert.Single(Assert.Single(_host.Posted)).SnapshotData);
    }

    [Fact]
    public async Task An_empty_snapshot_is_one_chunk()
    {
        var (error, ack) = await Send(Chunk(0, 0, done: true, header: Header(0)));

        Assert.Null(error);
        Assert.Equal(0, ack!.Received);
        Assert.Single(_host.Posted);
    }

    // Named cases (built on demand) keep megabytes of chunk data out of the test names. Each
    // names the check that must catch it: the lost, repeated and reordered chunks below add up to
    // the announced length and end with done, so only the offset check stands in their way.
    private static readonly Dictionary<string, (Func<P.SnapshotChunk[]> Chunks, string Reason)> BrokenStreams = new()
    {
        ["a lost chunk"] = (() => [Chunk(0, 10, header: Header(20)), Chunk(20, 10, done: true)], "expected the chunk at offset 10"),
        ["a repeated chunk"] = (() => [Chunk(0, 10, header: Header(20)), Chunk(0, 10, done: true)], "expected the chunk at offset 10"),
        ["reordered chunks"] = (() => [Chunk(0, 10, header: Header(30)), Chunk(20, 10), Chunk(10, 10, done: true)], "expected the chunk at offset 10"),
        ["more bytes than announced"] = (() => [Chunk(0, 10, header: Header(15)), Chunk(10, 10, done: true)], "runs past"),
        ["done before all bytes"] = (() => [Chunk(0, 10, header: Header(30)), Chunk(10, 10, done: true)], "the header says 30"),
        ["the stream ends without done"] = (() => [Chunk(0, 10, header: Header(30)), Chunk(10, 10)], "before its last chunk"),
        ["a second header"] = (() => [Chunk(0, 10, header: Header(30)), Chunk(10, 10, header: Header(30))], "a header in the chunk"),
        ["a chunk over 4 MiB"] = (() => [Chunk(0, 10, header: Header(10 << 20)), Chunk(10, (4 << 20) + 1)], "at most"),
    };

    public static TheoryData<string> BrokenStreamNames() => new(BrokenStreams.Keys);

    [Theory]
    [MemberData(nameof(BrokenStreamNames))]
    public async Task A_broken_stream_aborts_the_upload(string why)
    {
        var (chunks, reason) = BrokenStreams[why];

        var (error, _) = await Send(chunks());

        Assert.True(error is { StatusCode: StatusCode.InvalidArgument }, $"{why}: {error?.Status.ToString() ?? "acknowledged"}");
        Assert.Contains(reason, error!.Status.Detail);
        var upload = Assert.Single(_host.Sink.All);
        Assert.True(upload.Disposed.IsCompleted, $"{why}: the upload was not discarded");
        Assert.False(upload.CompleteCalled, why);
        Assert.Empty(_host.Posted);
    }

    private static readonly Dictionary<string, (Func<P.SnapshotChunk[]> Chunks, StatusCode Expected)> RefusedHeaders = new()
    {
        ["no header"] = (() => [Chunk(0, 10, done: true)], StatusCode.InvalidArgument),
        ["addressed to another node"] = (() => [Chunk(0, 10, done: true, header: Header(10, to: 3))], StatusCode.InvalidArgument),
        ["from a stranger"] = (() => [Chunk(0, 10, done: true, header: Header(10, from: 9))], StatusCode.PermissionDenied),
        ["from this node itself"] = (() => [Chunk(0, 10, done: true, header: Header(10, from: 2))], StatusCode.PermissionDenied),
        ["an index of 0"] = (() => [Chunk(0, 10, done: true, header: Header(10).Also(h => h.SnapshotIndex = 0))], StatusCode.InvalidArgument),
        ["a snapshot term after the leader's"] = (() => [Chunk(0, 10, done: true, header: Header(10).Also(h => h.SnapshotTerm = 5))], StatusCode.InvalidArgument),
        ["a negative length"] = (() => [Chunk(0, 0, done: true, header: Header(-1))], StatusCode.InvalidArgument),
        ["a term that could overflow"] = (() => [Chunk(0, 10, done: true, header: Header(10).Also(h => h.Term = long.MaxValue))], StatusCode.InvalidArgument),
        ["an index that could overflow"] = (() => [Chunk(0, 10, done: true, header: Header(10).Also(h => h.SnapshotIndex = long.MaxValue))], StatusCode.InvalidArgument),
        ["an empty stream"] = (() => [], StatusCode.InvalidArgument),
    };

    public static TheoryData<string> RefusedHeaderNames() => new(RefusedHeaders.Keys);

    [Theory]
    [MemberData(nameof(RefusedHeaderNames))]
    public async Task A_bad_header_is_refused_before_anything_is_stored(string why)
    {
        var (chunks, expected) = RefusedHeaders[why];

        var (error, _) = await Send(chunks());

        Assert.True(error?.StatusCode == expected, $"{why}: {error?.Status.ToString() ?? "acknowledged"}");
        Assert.Equal(0, _host.Sink.Count);
        Assert.Empty(_host.Posted);
    }

    [Fact]
    public async Task A_suspended_node_answers_unavailable()
    {
        _host.Suspended = true;

        var (error, _) = await Send(Chunk(0, 10, done: true, header: Header(10)));

        Assert.Equal(StatusCode.Unavailable, error?.StatusCode);
        Assert.Equal(0, _host.Sink.Count);
        Assert.Empty(_host.Posted);
    }

    [Fact]
    public async Task A_failing_disk_aborts_the_upload_with_a_status()
    {
        _host.Sink.FailWrites = true;

        var (error, _) = await Send(Chunk(0, 10, header: Header(20)), Chunk(10, 10, done: true));

        Assert.Equal(StatusCode.Internal, error?.StatusCode);
        Assert.Contains("No space left", error!.Status.Detail);
        Assert.True(Assert.Single(_host.Sink.All).Disposed.IsCompleted);
        Assert.Empty(_host.Posted);
    }
}

internal static class ProtoTestExtensions
{
    /// <summary>Mutates and returns the message (for one-line test data).</summary>
    public static T Also<T>(this T message, Action<T> change)
    {
        change(message);
        return message;
    }
}
