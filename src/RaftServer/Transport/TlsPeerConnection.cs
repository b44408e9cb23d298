using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>
/// A peer's message connection over peer TLS, its hello read (<see cref="PeerTlsAcceptor"/>). The
/// node loop cannot poll an <see cref="SslStream"/>, so each such connection has a reader task that
/// decrypts what arrives, cuts it into whole frames (<see cref="PeerWire.TryRead"/>, straight from the
/// pipe's buffers) and hands the batches to the loop through <see cref="PeerSockets"/>' bounded queue
/// (one wake-up of the loop per read, not per frame); a full queue stops the reading, so a fast sender
/// is held back by TCP. It answers pings itself. The loop owns the connection's place in
/// <see cref="PeerSockets"/> (replacement by a newer connection, idle close).
/// </summary>
public sealed class TlsPeerConnection : IDisposable
{
    private readonly SslStream _stream;
    private readonly PipeReader _reader;
    private readonly CancellationTokenSource _closed = new();
    private long _lastHeard = Stopwatch.GetTimestamp();
    private volatile bool _ended;

    public TlsPeerConnection(SslStream stream, PipeReader reader, EndPoint? remote, int peerId)
    {
        _stream = stream;
        _reader = reader;
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

    /// <summary>Starts the reader task: batches go to <paramref name="sink"/>, then <paramref name="wake"/> once per read that delivered any.</summary>
    public void Start(ChannelWriter<(TlsPeerConnection From, P.MessageBatch Batch)> sink, Action wake, ILogger logger) =>
        _ = Task.Run(() => ReadAsync(sink, wake, logger));

    private async Task ReadAsync(ChannelWriter<(TlsPeerConnection, P.MessageBatch)> sink, Action wake, ILogger logger)
    {
        var ct = _closed.Token;
        var ping = PeerWire.Ping.ToArray();
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync(ct);
                var buffer = result.Buffer;
                var pinged = false;
                var delivered = false;
                while (true)
                {
                    var before = buffer.Length;
                    if (!PeerWire.TryRead(ref buffer, out var batch)) break;
                    // Heard now, before a full queue can hold this reader back: back-pressure is not silence.
                    Volatile.Write(ref _lastHeard, Stopwatch.GetTimestamp());
                    if (before - buffer.Length == PeerWire.HeaderBytes)
                    {
                        pinged = true;
                        continue;
                    }
                    if (!sink.TryWrite((this, batch)))
                    {
                        wake(); // the loop drains the queue; wait for room (TCP holds the sender back meanwhile)
                        await sink.WriteAsync((this, batch), ct);
                    }
                    delivered = true;
                }
                _reader.AdvanceTo(buffer.Start, buffer.End);
                Volatile.Write(ref _lastHeard, Stopwatch.GetTimestamp());
                if (delivered) wake();
                // One acknowledgement for the pings of this read (the sender has one out at a time).
                if (pinged) await _stream.WriteAsync(ping, ct);
                if (result.IsCompleted) return;
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
        finally
        {
            _ended = true;
            wake();
        }
    }

    public void Dispose()
    {
        _ended = true;
        try { _closed.Cancel(); } catch (ObjectDisposedException) { }
        _stream.Dispose();
    }
}
