using System.Threading.Channels;
using RaftServer.Consensus;
using RaftServer.Transport;

namespace RaftServer.Tests.Transport;

/// <summary>A snapshot "file" in memory that records how far and how much at a time it was read.</summary>
internal sealed class FakeSnapshotSource(byte[] data) : ISnapshotSource
{
    private long _maxPosition;
    private int _largestRead;

    public byte[] Data => data;
    public bool Missing { get; set; }
    /// <summary>A length to claim instead of the real one (a file cut short on disk).</summary>
    public long? ClaimedLength { get; set; }
    /// <summary>A read that comes up short of <see cref="ClaimedLength"/> waits for this first, so a
    /// test can let the receiver begin its upload before the sender finds the file cut short.</summary>
    public Task ShortReadMayProceed { get; set; } = Task.CompletedTask;
    /// <summary>The furthest byte any reader has reached.</summary>
    public long MaxPosition => Interlocked.Read(ref _maxPosition);
    public int LargestRead => Volatile.Read(ref _largestRead);

    public Stream OpenSnapshot(SnapshotMetadata meta)
    {
        if (Missing) throw new FileNotFoundException($"snapshot {meta.Index} is gone");
        return new TrackingStream(this);
    }

    private void Record(long position, int count)
    {
        long seen;
        while ((seen = Interlocked.Read(ref _maxPosition)) < position && Interlocked.CompareExchange(ref _maxPosition, position, seen) != seen) { }
        int largest;
        while ((largest = Volatile.Read(ref _largestRead)) < count && Interlocked.CompareExchange(ref _largestRead, count, largest) != largest) { }
    }

    /// <summary>Read-only, seekable (so it knows its Length) and every read recorded.</summary>
    private sealed class TrackingStream(FakeSnapshotSource owner) : Stream
    {
        private long _position;

        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => owner.ClaimedLength ?? owner.Data.Length;
        public override long Position { get => _position; set => _position = value; }

        public override int Read(Span<byte> buffer)
        {
            var n = (int)Math.Min(buffer.Length, Math.Max(0, owner.Data.Length - _position));
            if (n < buffer.Length && _position + n < Length && !owner.ShortReadMayProceed.Wait(SnapshotTestHost.Patience))
                throw new TimeoutException("the test never let the short read proceed");
            owner.Data.AsSpan((int)_position, n).CopyTo(buffer);
            _position += n;
            owner.Record(_position, buffer.Length);
            return n;
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override void Flush() { }
    }
}

/// <summary>
/// Uploads into memory. <see cref="Stall"/> picks uploads whose writes block until
/// <see cref="Release"/> (a receiver that cannot keep up); <see cref="Damaged"/> makes Complete
/// throw as a failed checksum would; <see cref="FailWrites"/> makes Write throw as a full disk would.
/// </summary>
internal sealed class FakeSnapshotSink : ISnapshotSink
{
    private readonly ManualResetEventSlim _released = new(false);

    public Func<SnapshotMetadata, bool> Stall { get; set; } = _ => false;
    public bool Damaged { get; set; }
    public bool FailWrites { get; set; }
    /// <summary>Every upload begun, in order.</summary>
    public Channel<FakeUpload> Begun { get; } = Channel.CreateUnbounded<FakeUpload>();
    public List<FakeUpload> All { get; } = new();

    public ISnapshotUpload BeginUpload(SnapshotMetadata meta, ulong clusterId = 0)
    {
        var upload = new FakeUpload(this, meta, Stall(meta));
        lock (All) All.Add(upload);
        Begun.Writer.TryWrite(upload);
        return upload;
    }

    public void Release() => _released.Set();

    public int Count
    {
        get { lock (All) return All.Count; }
    }

    internal void WaitIfStalled(FakeUpload upload)
    {
        if (upload.Stalled && !_released.Wait(SnapshotTestHost.Patience))
            throw new TimeoutException("the test never released the stalled upload");
    }
}

internal sealed class FakeUpload(FakeSnapshotSink sink, SnapshotMetadata meta, bool stalled) : ISnapshotUpload
{
    private readonly MemoryStream _data = new();
    private readonly TaskCompletionSource _disposed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public SnapshotMetadata Meta => meta;
    public bool Stalled => stalled;
    public int LargestChunk { get; private set; }
    public int Writes { get; private set; }
    /// <summary>Set when Complete returned normally: the handle it returned.</summary>
    public object? Handle { get; private set; }
    public bool CompleteCalled { get; private set; }
    public Task Disposed => _disposed.Task;
    public byte[] Bytes => _data.ToArray();

    public void Write(ReadOnlySpan<byte> chunk)
    {
        if (_disposed.Task.IsCompleted) throw new ObjectDisposedException(nameof(FakeUpload));
        if (sink.FailWrites) throw new IOException("No space left on device");
        sink.WaitIfStalled(this);
        LargestChunk = Math.Max(LargestChunk, chunk.Length);
        Writes++;
        _data.Write(chunk);
    }

    public object Complete()
    {
        CompleteCalled = true;
        if (sink.Damaged) throw new InvalidDataException("trailer checksum mismatch");
        Handle = new object();
        return Handle;
    }

    public void Dispose() => _disposed.TrySetResult();
}
