using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace RaftServer.Api.Security;

/// <summary>
/// A Kestrel connection middleware that gathers HTTP/2's output into fewer TLS records: on the
/// client TLS endpoint (after <c>UseHttps</c>) and on the peer TLS one (forwarded calls' answers).
/// Kestrel's HTTP/2 writer flushes once per response, and under TLS every flush is one
/// <c>SslStream</c> write: a record of its own, encrypted by the node and decrypted by the client
/// one by one (0.73 records per get at C=64, where the client packs about 11 requests into each of
/// its records). Here HTTP/2 writes into a pipe instead; one pump per connection takes everything
/// that gathered there since its last write and hands it to the TLS stream in one write, so
/// responses that complete together leave as one record (0.12 per get). A lone response waits only
/// for the pump's turn on the thread pool.
/// </summary>
public static class TlsOutputCoalescing
{
    /// <summary>HTTP/2 may get this far ahead of the TLS stream before its flushes wait (Kestrel's own
    /// default response buffer).</summary>
    public const long PauseWriterBytes = 64 * 1024;

    public static ConnectionDelegate Middleware(ConnectionDelegate next) => async context =>
    {
        var tls = context.Transport;
        var pool = context.Features.Get<IMemoryPoolFeature>()?.MemoryPool;
        var gathered = new Pipe(new PipeOptions(
            pool,
            readerScheduler: PipeScheduler.ThreadPool,
            writerScheduler: PipeScheduler.Inline,
            pauseWriterThreshold: PauseWriterBytes,
            resumeWriterThreshold: PauseWriterBytes / 2,
            useSynchronizationContext: false));
        context.Transport = new DuplexPipe(tls.Input, gathered.Writer);
        var pump = PumpAsync(gathered.Reader, tls.Output);
        try
        {
            await next(context);
        }
        finally
        {
            // Whatever HTTP/2 wrote last (its GOAWAY) still leaves before the TLS stream is closed.
            await gathered.Writer.CompleteAsync();
            await pump;
            context.Transport = tls;
        }
    };

    /// <summary>Copies what gathered in <paramref name="from"/> to <paramref name="to"/>, one flush per
    /// batch, until HTTP/2 completes its output or the TLS side fails; a failure is passed back to
    /// HTTP/2's writer (its next flush sees it) and to the TLS side.</summary>
    public static async Task PumpAsync(PipeReader from, PipeWriter to)
    {
        Exception? failure = null;
        try
        {
            while (true)
            {
                var read = await from.ReadAsync();
                var buffer = read.Buffer;
                foreach (var segment in buffer) to.Write(segment.Span);
                from.AdvanceTo(buffer.End);
                if (!buffer.IsEmpty && (await to.FlushAsync()).IsCompleted) break;
                if (read.IsCompleted || read.IsCanceled) break;
            }
        }
        catch (Exception e)
        {
            failure = e;
        }
        await from.CompleteAsync(failure);
        await to.CompleteAsync(failure);
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;
        public PipeWriter Output { get; } = output;
    }
}
