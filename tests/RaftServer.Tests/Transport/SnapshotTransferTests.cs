using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using RaftServer.Cluster;
using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.Transport;
using Xunit.Abstractions;

namespace RaftServer.Tests.Transport;

/// <summary>
/// SnapshotSender (leader) to SnapshotReceiver (follower) over real gRPC on loopback, with
/// in-memory snapshot files: what arrives, what is posted to the follower's loop, and what the
/// leader's core is told.
/// </summary>
public sealed class SnapshotTransferTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan Patience = SnapshotTestHost.Patience;

    private readonly TestLogger _senderLog = new();
    private readonly TestLogger _receiverLog = new();
    private readonly Channel<(int Peer, bool Success)> _reports = Channel.CreateUnbounded<(int, bool)>();
    private readonly List<IAsyncDisposable> _cleanup = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        for (var i = _cleanup.Count - 1; i >= 0; i--) await _cleanup[i].DisposeAsync();
        foreach (var line in _senderLog.Lines) output.WriteLine($"leader   {line}");
        foreach (var line in _receiverLog.Lines) output.WriteLine($"follower {line}");
    }

    private async Task<SnapshotTestHost> Follower(FakeSnapshotSink? sink = null)
    {
        var host = await SnapshotTestHost.StartAsync(sink ?? new FakeSnapshotSink(), _receiverLog);
        _cleanup.Add(host);
        return host;
    }

    private SnapshotSender Sender(NodeAddress peer, FakeSnapshotSource source, TimeSpan timeout, int chunkBytes = SnapshotSender.DefaultChunkBytes)
    {
        var sender = new SnapshotSender(id => id == peer.Id ? peer : null, source,
            (p, ok) => _reports.Writer.TryWrite((p, ok)), timeout, _senderLog, chunkBytes);
        _cleanup.Add(sender);
        return sender;
    }

    private static Message SnapshotMessage(long index, long term = 4, int to = 2) => new()
    {
        Type = MessageType.Snapshot, From = 1, To = to, Term = term, Index = index, LogTerm = 3,
        Snapshot = new SnapshotMetadata(index, 3, [1, 2, 3]),
    };

    private static byte[] RandomBytes(int length)
    {
        var data = new byte[length];
        new Random(length).NextBytes(data);
        return data;
    }

    private async Task<(int Peer, bool Success)> NextReport() => await _reports.Reader.ReadAsync().AsTask().WaitAsync(Patience);

    private static async Task<FakeUpload> NextUpload(FakeSnapshotSink sink) => await sink.Begun.Reader.ReadAsync().AsTask().WaitAsync(Patience);

    [Fact]
    public async Task A_20_MB_snapshot_arrives_byte_identical_and_is_posted_once_with_its_handle()
    {
        var host = await Follower();
        var source = new FakeSnapshotSource(RandomBytes(20 << 20));
        var sender = Sender(host.Address, source, Patience);
        var message = SnapshotMessage(100);

        var clock = Stopwatch.StartNew();
        sender.Start(message);
        Assert.Equal((2, true), await NextReport());
        clock.Stop();

        var upload = Assert.Single(host.Sink.All);
        Assert.True(upload.Bytes.SequenceEqual(source.Data), "the received bytes differ from the snapshot file");
        Assert.True(upload.Disposed.IsCompleted);
        Assert.NotNull(upload.Handle);
        var posted = Assert.Single(Assert.Single(host.Posted));
        Assert.Equal(MessageType.Snapshot, posted.Type);
        Assert.Equal((1, 2, 4L), (posted.From, posted.To, posted.Term));
        Assert.Equal((100L, 3L), (posted.Snapshot!.Index, posted.Snapshot.Term));
        Assert.Equal([1, 2, 3], posted.Snapshot.Members);
        Assert.Same(upload.Handle, posted.SnapshotData);
        Assert.Equal((100L, 3L), (posted.Index, posted.LogTerm));
        // Bounded memory: nobody handled more than one chunk at a time.
        Assert.Equal(SnapshotSender.DefaultChunkBytes, upload.LargestChunk);
        Assert.Equal(SnapshotSender.DefaultChunkBytes, source.LargestRead);
        Assert.Equal(20, upload.Writes);
        Assert.Contains(_senderLog.Lines, l => l.Contains("Sent snapshot 100") && l.Contains("MB/s"));
        output.WriteLine($"20 MiB over loopback in {clock.ElapsedMilliseconds} ms: {(20 << 20) / 1e3 / clock.ElapsedMilliseconds:F1} MB/s (start to report)");
    }

    [Fact]
    public async Task A_snapshot_that_fails_verification_is_discarded_and_reported_as_failed()
    {
        var host = await Follower(new FakeSnapshotSink { Damaged = true });
        var sender = Sender(host.Address, new FakeSnapshotSource(RandomBytes(3 << 20)), Patience);

        sender.Start(SnapshotMessage(100));

        Assert.Equal((2, false), await NextReport());
        var upload = Assert.Single(host.Sink.All);
        Assert.True(upload.CompleteCalled);
        Assert.True(upload.Disposed.IsCompleted, "the damaged upload was not discarded");
        Assert.Null(upload.Handle);
        Assert.Empty(host.Posted);
        Assert.Contains(_senderLog.Lines, l => l.Contains("DataLoss"));
    }

    [Fact]
    public async Task A_peer_that_is_down_is_reported_as_failed()
    {
        // A port that was free a moment ago: nothing listens there (connections are refused).
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var timeout = TimeSpan.FromSeconds(10);
        var sender = Sender(new NodeAddress(2, "127.0.0.1", port), new FakeSnapshotSource(RandomBytes(1000)), timeout);

        var clock = Stopwatch.StartNew();
        sender.Start(SnapshotMessage(100));

        Assert.Equal((2, false), await NextReport());
        Assert.True(clock.Elapsed < timeout, $"a refused connection took {clock.ElapsedMilliseconds} ms to report");
    }

    [Fact]
    public async Task A_peer_that_never_answers_is_reported_as_failed_at_the_deadline()
    {
        // Accepts TCP connections (the kernel does) but never speaks HTTP/2.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var timeout = TimeSpan.FromSeconds(1);
        var sender = Sender(new NodeAddress(2, "127.0.0.1", port), new FakeSnapshotSource(RandomBytes(1000)), timeout);

        var clock = Stopwatch.StartNew();
        sender.Start(SnapshotMessage(100));

        Assert.Equal((2, false), await NextReport());
        Assert.InRange(clock.Elapsed, timeout * 0.9, timeout + TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_transfer_longer_than_the_deadline_fails_the_follower_discards_and_the_leader_reads_only_a_window_ahead()
    {
        // The follower takes the first chunk and then stalls (a disk that cannot keep up).
        var sink = new FakeSnapshotSink { Stall = _ => true };
        var host = await Follower(sink);
        const int chunk = 256 << 10;
        var source = new FakeSnapshotSource(RandomBytes(20 << 20));
        var timeout = TimeSpan.FromSeconds(1.5);
        var sender = Sender(host.Address, source, timeout, chunk);

        sender.Start(SnapshotMessage(100));

        Assert.Equal((2, false), await NextReport());
        // While the follower stalled, flow control held the leader back: what it read is at most
        // the HTTP/2 stream window plus the few chunks held by the two ends, not the file.
        var bound = SnapshotTestHost.StreamWindowBytes + 4 * chunk;
        Assert.True(source.MaxPosition <= bound, $"the leader read {source.MaxPosition} bytes ahead of a stalled follower (bound {bound})");
        sink.Release();
        var upload = Assert.Single(sink.All);
        await upload.Disposed.WaitAsync(Patience);
        Assert.Null(upload.Handle);
        Assert.False(upload.CompleteCalled);
        Assert.Empty(host.Posted);
        output.WriteLine($"read ahead of a stalled follower: {source.MaxPosition} bytes (bound {bound})");
    }

    [Fact]
    public async Task A_repeated_start_is_ignored_and_a_newer_snapshot_replaces_the_running_one()
    {
        var sink = new FakeSnapshotSink { Stall = meta => meta.Index == 10 };
        var host = await Follower(sink);
        var sender = Sender(host.Address, new FakeSnapshotSource(RandomBytes(2 << 20)), Patience);

        sender.Start(SnapshotMessage(10));
        var old = await NextUpload(sink);
        Assert.Equal(10, old.Meta.Index);
        sender.Start(SnapshotMessage(10)); // the core asking again for the snapshot on its way
        sender.Start(SnapshotMessage(20));

        var reports = new[] { await NextReport(), await NextReport() };
        Assert.Equal([(2, false), (2, true)], reports.Order());
        sink.Release();
        await old.Disposed.WaitAsync(Patience);
        await sender.DisposeAsync(); // waits for every transfer: each reports before it ends
        Assert.False(_reports.Reader.TryRead(out var extra), $"an extra report {extra}: the repeated start ran a transfer");
        Assert.Null(old.Handle);
        var posted = Assert.Single(Assert.Single(host.Posted));
        Assert.Equal(20, posted.Snapshot!.Index);
        Assert.Equal([10L, 20L], sink.All.Select(u => u.Meta.Index));
    }

    [Fact]
    public async Task CancelAll_fails_the_running_transfer_and_the_same_snapshot_can_then_be_sent_again()
    {
        var stallFirst = 1;
        var sink = new FakeSnapshotSink { Stall = _ => Interlocked.Exchange(ref stallFirst, 0) == 1 };
        var host = await Follower(sink);
        var sender = Sender(host.Address, new FakeSnapshotSource(RandomBytes(2 << 20)), Patience);

        sender.Start(SnapshotMessage(10));
        var first = await NextUpload(sink);
        sender.CancelAll();
        Assert.Equal((2, false), await NextReport());

        sender.Start(SnapshotMessage(10)); // not ignored: the cancelled transfer no longer counts
        Assert.Equal((2, true), await NextReport());
        sink.Release();
        await first.Disposed.WaitAsync(Patience);
        Assert.Null(first.Handle);
        Assert.Single(Assert.Single(host.Posted));
    }

    [Fact]
    public async Task A_suspended_follower_refuses_and_stores_nothing()
    {
        var host = await Follower();
        host.Suspended = true;
        var sender = Sender(host.Address, new FakeSnapshotSource(RandomBytes(1 << 20)), Patience);

        sender.Start(SnapshotMessage(10));

        Assert.Equal((2, false), await NextReport());
        Assert.Equal(0, host.Sink.Count);
        Assert.Empty(host.Posted);
        Assert.Contains(_senderLog.Lines, l => l.Contains("Unavailable"));
    }

    [Fact]
    public async Task A_snapshot_file_that_is_gone_is_reported_as_failed()
    {
        var host = await Follower();
        var sender = Sender(host.Address, new FakeSnapshotSource(RandomBytes(1000)) { Missing = true }, Patience);

        sender.Start(SnapshotMessage(10));

        Assert.Equal((2, false), await NextReport());
        Assert.Equal(0, host.Sink.Count);
        Assert.Contains(_senderLog.Lines, l => l.Contains("snapshot 10 is gone"));
    }

    [Fact]
    public async Task A_snapshot_file_shorter_than_its_length_fails_at_once_and_the_follower_discards()
    {
        var host = await Follower();
        // The short read waits until the follower has begun its upload: otherwise the sender may
        // cancel the call before the follower's handler has taken the first chunk.
        var uploadBegun = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var source = new FakeSnapshotSource(RandomBytes(3 << 20)) { ClaimedLength = 4 << 20, ShortReadMayProceed = uploadBegun.Task };
        var timeout = TimeSpan.FromSeconds(20);
        var sender = Sender(host.Address, source, timeout);

        var clock = Stopwatch.StartNew();
        sender.Start(SnapshotMessage(10));
        var upload = await NextUpload(host.Sink);
        uploadBegun.SetResult();

        Assert.Equal((2, false), await NextReport());
        Assert.True(clock.Elapsed < timeout / 2, $"the failure took {clock.ElapsedMilliseconds} ms: it waited for the deadline");
        Assert.Contains(_senderLog.Lines, l => l.Contains("ended at"));
        await upload.Disposed.WaitAsync(Patience);
        Assert.False(upload.CompleteCalled);
        Assert.Empty(host.Posted);
    }

    [Fact]
    public async Task A_peer_missing_from_the_config_is_reported_as_failed()
    {
        var sender = Sender(new NodeAddress(2, "127.0.0.1", 1), new FakeSnapshotSource(RandomBytes(1000)), Patience);

        sender.Start(SnapshotMessage(10, to: 7));

        Assert.Equal((7, false), await NextReport());
    }
}
