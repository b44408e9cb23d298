using System.IO.Pipelines;
using RaftServer.Api.Security;

namespace RaftServer.Tests.Api.Security;

/// <summary>
/// The pump between HTTP/2's output and the TLS stream (<see cref="TlsOutputCoalescing"/>): what
/// gathered since its last write leaves in one write, in order, and an end or a failure on either
/// side reaches the other.
/// </summary>
public sealed class TlsOutputCoalescingTests
{
    /// <summary>Stands for the SslStream: each write would be one TLS record.</summary>
    private sealed class RecordingStream(Exception? failWith = null) : Stream
    {
        private readonly MemoryStream _written = new();
        public int Writes { get; private set; }
        public byte[] Written => _written.ToArray();

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (failWith is not null) throw failWith;
            Writes++;
            _written.Write(buffer.Span);
            return ValueTask.CompletedTask;
        }

        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override void Flush() { }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }

    private static Pipe Gathering() => new(new PipeOptions(
        pauseWriterThreshold: TlsOutputCoalescing.PauseWriterBytes,
        resumeWriterThreshold: TlsOutputCoalescing.PauseWriterBytes / 2,
        useSynchronizationContext: false));

    private static byte[] Response(int i) => Enumerable.Range(0, 100).Select(b => (byte)(i + b)).ToArray();

    [Fact]
    public async Task Responses_flushed_while_the_pump_was_busy_leave_in_one_write_in_order()
    {
        var gathered = Gathering();
        var tls = new RecordingStream();
        // 30 responses, each flushed on its own as Kestrel's HTTP/2 writer does, before the pump's turn.
        for (var i = 0; i < 30; i++)
        {
            await gathered.Writer.WriteAsync(Response(i));
        }
        await gathered.Writer.CompleteAsync();

        await TlsOutputCoalescing.PumpAsync(gathered.Reader, PipeWriter.Create(tls));

        Assert.Equal(1, tls.Writes);
        Assert.Equal(Enumerable.Range(0, 30).SelectMany(Response).ToArray(), tls.Written);
    }

    [Fact]
    public async Task Each_batch_is_written_and_flushed_before_the_pump_waits_for_more()
    {
        var gathered = Gathering();
        var tls = new RecordingStream();
        var pump = TlsOutputCoalescing.PumpAsync(gathered.Reader, PipeWriter.Create(tls));

        await gathered.Writer.WriteAsync(Response(1));
        await WaitUntil(() => tls.Writes == 1);
        await gathered.Writer.WriteAsync(Response(2));
        await WaitUntil(() => tls.Writes == 2);
        Assert.False(pump.IsCompleted);

        await gathered.Writer.CompleteAsync();
        await pump.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(Response(1).Concat(Response(2)).ToArray(), tls.Written);
    }

    [Fact]
    public async Task A_failing_tls_write_reaches_http2s_next_flush_and_ends_the_pump()
    {
        var gathered = Gathering();
        var failure = new IOException("connection reset");
        var pump = TlsOutputCoalescing.PumpAsync(gathered.Reader, PipeWriter.Create(new RecordingStream(failure)));

        await gathered.Writer.WriteAsync(Response(1));
        await pump.WaitAsync(TimeSpan.FromSeconds(10));

        var next = await Assert.ThrowsAsync<IOException>(async () => await gathered.Writer.WriteAsync(Response(2)));
        Assert.Same(failure, next);
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the condition did not hold in time");
            await Task.Delay(5);
        }
    }
}
