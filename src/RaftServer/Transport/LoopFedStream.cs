using System.Net.Sockets;
using System.Threading.Tasks.Sources;

namespace RaftServer.Transport;

/// <summary>
/// The stream under a peer TLS connection's <see cref="System.Net.Security.SslStream"/> on the
/// accepting side, fed by one thread that polls its socket: the handshake poller
/// (<see cref="TlsHandshakePoller"/>, from <see cref="StartFeeding"/>) through the handshake and the
/// hello, then the node loop (<see cref="HandToLoop"/>). Nothing else touches the socket: a read the
/// <c>SslStream</c> starts waits until the feeding thread, having polled the socket readable, calls
/// <see cref="Receive"/>, which reads the socket without blocking straight into that read's buffer
/// and completes it on that thread. So the <c>SslStream</c> decrypts there, and a peer's batch
/// reaches the core as a plain connection's does: no socket event thread, no pool thread
/// (<see cref="TlsPeerConnection"/>). The socket is never waited on through .NET's own socket
/// engine either: once an operation of that engine has waited on a socket, the engine watches it
/// for good, and every batch that then arrives wakes its event thread and a pool thread for nothing.
/// A peer's HTTP/2 connection goes back to a <see cref="NetworkStream"/> for Kestrel
/// (<see cref="HandToNetwork"/>); so does a stream never fed (tests).
/// <para>
/// Writes (TLS's own, the hello's answer, the acknowledgements of pings) go out without blocking;
/// what the socket's buffer cannot take is sent by a task, and while it is, more writes queue
/// behind it up to <see cref="MaxUnsentBytes"/> (past that the write fails and the connection is
/// closed: its peer reads nothing).
/// </para>
/// </summary>
public sealed class LoopFedStream(Socket socket) : Stream, IValueTaskSource<int>
{
    /// <summary>The most a connection may have waiting to be sent (a ping acknowledgement is about 30 bytes).</summary>
    public const int MaxUnsentBytes = 64 << 10;

    private readonly NetworkStream _network = new(socket, ownsSocket: true);
    private bool _fed;

    private ManualResetValueTaskSourceCore<int> _read; // RunContinuationsAsynchronously false: Receive completes the read inline
    private Memory<byte> _readBuffer;
    private bool _readPending;

    private readonly Lock _sendGate = new();
    private byte[]? _unsent;
    private int _unsentBytes;

    public Socket Socket { get; } = socket;

    /// <summary>The <c>SslStream</c> waits for bytes: <see cref="Receive"/> has somewhere to put them.</summary>
    public bool ReadPending => _readPending;

    /// <summary>Bytes a write could not send at once are still going out.</summary>
    public bool HasUnsent
    {
        get
        {
            lock (_sendGate) return _unsentBytes > 0;
        }
    }

    /// <summary>From now on a polling thread feeds the reads (nothing may be reading or writing the stream as this is called).</summary>
    public void StartFeeding()
    {
        Socket.Blocking = false;
        _fed = true;
    }

    /// <summary>The node loop takes over the feeding from the handshake poller (or starts it, on a stream never fed).</summary>
    public void HandToLoop() => StartFeeding();

    /// <summary>
    /// From now on reads and writes go to the socket through a <see cref="NetworkStream"/> (a
    /// peer's HTTP/2 connection, for Kestrel). No read may be waiting.
    /// </summary>
    public void HandToNetwork()
    {
        if (_readPending) throw new InvalidOperationException("a read of the loop-fed stream is still waiting");
        Socket.Blocking = true;
        _fed = false;
    }

    /// <summary>The feeding thread: ends the pending read, if one waits, with <paramref name="error"/> (a handshake that timed out, a node that stops).</summary>
    public void FailRead(Exception error)
    {
        if (!_readPending) return;
        _readPending = false;
        _readBuffer = default;
        _read.SetException(error);
    }

    /// <summary>
    /// The feeding thread: one non-blocking read of the socket into the pending read's buffer, which it
    /// completes (its continuation, the <c>SslStream</c>'s decryption, runs here). False when there
    /// was nothing to read or no read waits; a read that ends the stream completes with 0.
    /// </summary>
    /// <exception cref="SocketException">The connection broke.</exception>
    public bool Receive()
    {
        if (!_readPending) return false;
        var n = Socket.Receive(_readBuffer.Span, SocketFlags.None, out var error);
        if (error == SocketError.WouldBlock) return false;
        if (error != SocketError.Success) throw new SocketException((int)error);
        _readPending = false;
        _readBuffer = default;
        _read.SetResult(n);
        return true;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (!_fed) return _network.ReadAsync(buffer, cancellationToken);
        if (_readPending) throw new InvalidOperationException("a read of the loop-fed stream is already waiting");
        if (buffer.IsEmpty) return ValueTask.FromResult(0);
        _read.Reset();
        _readBuffer = buffer;
        _readPending = true;
        return new ValueTask<int>(this, _read.Version);
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (!_fed) return _network.WriteAsync(buffer, cancellationToken);
        Send(buffer.Span);
        return ValueTask.CompletedTask;
    }

    /// <summary>Sends without blocking; the rest goes out through a task, behind which later writes queue.</summary>
    private void Send(ReadOnlySpan<byte> data)
    {
        lock (_sendGate)
        {
            if (_unsentBytes > 0)
            {
                Queue(data);
                return;
            }
            var sent = Socket.Send(data, SocketFlags.None, out var error);
            if (error == SocketError.WouldBlock) sent = 0;
            else if (error != SocketError.Success) throw new IOException("sending to the peer failed", new SocketException((int)error));
            if (sent == data.Length) return;
            Queue(data[sent..]);
        }
        _ = Task.Run(FlushUnsentAsync);
    }

    private void Queue(ReadOnlySpan<byte> data)
    {
        if (_unsentBytes + data.Length > MaxUnsentBytes)
            throw new IOException($"the peer does not read: more than {MaxUnsentBytes} bytes wait to be sent to it");
        if (_unsent is null || _unsent.Length < _unsentBytes + data.Length)
            Array.Resize(ref _unsent, Math.Max(4096, _unsentBytes + data.Length));
        data.CopyTo(_unsent.AsSpan(_unsentBytes));
        _unsentBytes += data.Length;
    }

    private async Task FlushUnsentAsync()
    {
        var chunk = new byte[MaxUnsentBytes];
        try
        {
            while (true)
            {
                int count;
                lock (_sendGate)
                {
                    if (_unsentBytes == 0) return;
                    count = _unsentBytes;
                    _unsent.AsSpan(0, count).CopyTo(chunk);
                }
                var sent = await Socket.SendAsync(chunk.AsMemory(0, count), SocketFlags.None);
                lock (_sendGate)
                {
                    _unsent.AsSpan(sent, _unsentBytes - sent).CopyTo(_unsent);
                    _unsentBytes -= sent;
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The connection broke or was closed: its reads end it.
            lock (_sendGate) _unsentBytes = 0;
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) =>
        _fed ? throw new NotSupportedException("a polling thread feeds this stream's reads") : _network.Read(buffer, offset, count);

    public override void Write(byte[] buffer, int offset, int count)
    {
        if (_fed) Send(buffer.AsSpan(offset, count));
        else _network.Write(buffer, offset, count);
    }

    public override void Flush() { }
    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override bool CanTimeout => _network.CanTimeout;
    public override int ReadTimeout { get => _network.ReadTimeout; set => _network.ReadTimeout = value; }
    public override int WriteTimeout { get => _network.WriteTimeout; set => _network.WriteTimeout = value; }
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    int IValueTaskSource<int>.GetResult(short token) => _read.GetResult(token);
    ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _read.GetStatus(token);
    void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _read.OnCompleted(continuation, state, token, flags);

    protected override void Dispose(bool disposing)
    {
        if (disposing) _network.Dispose();
        base.Dispose(disposing);
    }
}
