using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>A batch a peer TLS connection's reader queued for the node loop, and what it holds of that connection's budget.</summary>
public readonly record struct TlsPeerBatch(TlsPeerConnection From, P.MessageBatch Batch, int Charge);

/// <summary>
/// A peer's message connection over peer TLS, its hello read (<see cref="PeerTlsAcceptor"/>). The
/// node loop cannot poll an <see cref="SslStream"/>, so each such connection has a reader task that
/// decrypts what arrives straight into one large buffer (<see cref="PeerFrameReader"/>: a read takes
/// a whole TLS record, and every whole frame in it is decoded at once) and hands the batches to the
/// loop through <see cref="PeerSockets"/>' queue, with one wake-up of the loop per read that
/// delivered any. It answers pings itself. The loop owns the connection's place in
/// <see cref="PeerSockets"/> (replacement by a newer connection, idle close).
/// <para>
/// What a connection has queued and the loop has not taken yet is bounded in bytes
/// (<see cref="MaxQueuedBytes"/>, each batch charged its frame's length plus
/// <see cref="BatchOverheadBytes"/>): past it the reader waits for the loop, so a fast or hostile
/// sender is held back by TCP, and no batch is dropped.
/// </para>
/// </summary>
public sealed class TlsPeerConnection : IDisposable
{
    /// <summary>The most one connection may have queued for the loop; a single larger frame (up to
    /// <see cref="PeerWire.MaxFrameBytes"/>) still passes when nothing of the connection is queued.</summary>
    public const long MaxQueuedBytes = 16 << 20;

    /// <summary>Charged per queued batch besides its bytes: the parsed objects, so that a flood of tiny batches is bounded too.</summary>
    public const int BatchOverheadBytes = 256;

    private readonly SslStream _stream;
    private readonly PipeReader _reader;
    private readonly long _maxQueuedBytes;
    private readonly CancellationTokenSource _closed = new();
    private long _lastHeard = Stopwatch.GetTimestamp();
    private volatile bool _ended;
    private long _queuedBytes;
    /// <summary>1 while the reader waits for room (<see cref="Taken"/> then releases <see cref="_room"/>).</summary>
    private int _waitingForRoom;
    private readonly SemaphoreSlim _room = new(0);

    /// <param name="reader">The reader the hello was read with: what it read past the hello is this connection's first bytes.</param>
    /// <param name="maxQueuedBytes">Default <see cref="MaxQueuedBytes"/> (tests set less).</param>
    public TlsPeerConnection(SslStream stream, PipeReader reader, EndPoint? remote, int peerId, long maxQueuedBytes = MaxQueuedBytes)
    {
        _stream = stream;
        _reader = reader;
        _maxQueuedBytes = maxQueuedBytes;
        Remote = remote?.ToString() ?? "?";
        RemoteAddress = (remote as IPEndPoint)?.Address.ToString() ?? Remote;
        PeerId = peerId;
    }

    /// <summary>The peer's address and port, for log lines.</summary>
    public string Remote { get; }
    /// <summary>The peer's address without its port (what log lines are rate-limited on).</summary>
    public string RemoteAddress { get; }
    /// <summary>The node its certificate and hello named: the only sender whose batches it carries.</summary>
    public int PeerId { get; }
    /// <summary>When bytes last arrived (a Stopwatch timestamp).</summary>
    public long LastHeard => Volatile.Read(ref _lastHeard);
    /// <summary>The connection ended (the peer closed it, it broke, or a frame was malformed).</summary>
    public bool Ended => _ended;
    /// <summary>What this connection has queued for the loop and the loop has not taken (<see cref="TlsPeerBatch.Charge"/> summed).</summary>
    public long QueuedBytes => Volatile.Read(ref _queuedBytes);
    /// <summary>The reader waits for the loop to take some of what this connection queued.</summary>
    public bool WaitingForRoom => Volatile.Read(ref _waitingForRoom) == 1;

    /// <summary>Starts the reader task: batches go to <paramref name="sink"/>, then <paramref name="wake"/> once per read that delivered any.
    /// Whoever takes a batch from the sink calls <see cref="Taken"/> with it.</summary>
    public void Start(ChannelWriter<TlsPeerBatch> sink, Action wake, ILogger logger) =>
        _ = Task.Run(() => ReadAsync(sink, wake, logger));

    /// <summary>The loop took <paramref name="batch"/> (of this connection) off the queue: its charge is room again.</summary>
    public void Taken(in TlsPeerBatch batch)
    {
        Interlocked.Add(ref _queuedBytes, -batch.Charge);
        if (Interlocked.Exchange(ref _waitingForRoom, 0) == 1) _room.Release();
    }

    private async Task ReadAsync(ChannelWriter<TlsPeerBatch> sink, Action wake, ILogger logger)
    {
        var ct = _closed.Token;
        var ping = PeerWire.Ping.ToArray();
        var frames = new PeerFrameReader();
        try
        {
            // What the hello's reader read ahead (or, if none, its next read); from here on the stream is read
            // straight into the frame buffer (a pipe reads in 4 KiB pieces: several reads and copies per TLS record).
            var early = await _reader.ReadAsync(ct);
            frames.Append(early.Buffer);
            _reader.AdvanceTo(early.Buffer.End);
            await _reader.CompleteAsync();
            if (early.IsCompleted && frames.Buffered == 0) return;
            while (true)
            {
                var pinged = false;
                var delivered = false;
                while (frames.TryTake(out var batch, out var frameBytes))
                {
                    // Heard now, before a full queue can hold this reader back: back-pressure is not silence.
                    Volatile.Write(ref _lastHeard, Stopwatch.GetTimestamp());
                    if (batch is null)
                    {
                        pinged = true;
                        continue;
                    }
                    await QueueAsync(sink, new TlsPeerBatch(this, batch, frameBytes + BatchOverheadBytes), wake, ct);
                    delivered = true;
                }
                frames.Compact();
                if (delivered) wake();
                // One acknowledgement for the pings of this read (the sender has one out at a time).
                if (pinged) await _stream.WriteAsync(ping, ct);
                var n = await _stream.ReadAsync(frames.Free, ct);
                if (n == 0) return;
                frames.Received(n);
                Volatile.Write(ref _lastHeard, Stopwatch.GetTimestamp());
            }
        }
        catch (InvalidDataException e)
        {
            logger.LogWarning("Closed a peer TLS connection from {Remote} (node {Peer}): {Error}", Remote, PeerId, e.Message);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or ChannelClosedException or InvalidOperationException)
        {
            // the peer went away (it reconnects), or the loop closed the connection
        }
        catch (Exception e)
        {
            // Not expected: said, so that a reader that stops is never silent (the loop drops the connection; the peer reconnects).
            logger.LogError("The reader of the peer TLS connection from {Remote} (node {Peer}) failed: {Error}", Remote, PeerId, e);
        }
        finally
        {
            _ended = true;
            wake();
        }
    }

    /// <summary>Queues a batch once the connection's budget has room for it (the loop is woken to make room meanwhile).</summary>
    private async ValueTask QueueAsync(ChannelWriter<TlsPeerBatch> sink, TlsPeerBatch item, Action wake, CancellationToken ct)
    {
        while (!HasRoomFor(item.Charge))
        {
            Interlocked.Exchange(ref _waitingForRoom, 1);
            if (HasRoomFor(item.Charge)) // taken meanwhile: Taken may have seen the flag unset
            {
                Volatile.Write(ref _waitingForRoom, 0);
                break;
            }
            wake();
            await _room.WaitAsync(ct);
        }
        Interlocked.Add(ref _queuedBytes, item.Charge);
        if (!sink.TryWrite(item)) await sink.WriteAsync(item, ct);
    }

    private bool HasRoomFor(int charge)
    {
        var queued = Volatile.Read(ref _queuedBytes);
        return queued == 0 || queued + charge <= _maxQueuedBytes;
    }

    public void Dispose()
    {
        _ended = true;
        try { _closed.Cancel(); } catch (ObjectDisposedException) { }
        _stream.Dispose();
    }
}
