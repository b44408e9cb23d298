using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>
/// A peer's message connection over peer TLS, its hello read (<see cref="PeerTlsAcceptor"/>), read
/// by the node loop's thread as a plain connection is (<see cref="PeerSockets"/>): the loop polls
/// its socket with the others, and when it is readable <see cref="Pump"/> reads it without
/// blocking into the <see cref="SslStream"/>'s pending read (<see cref="LoopFedStream"/>), which
/// decrypts there, straight into one frame buffer (<see cref="PeerFrameReader"/>: a read takes a
/// whole TLS record, and every whole frame in it is decoded at once). It answers pings on the same
/// connection. Not thread-safe: the loop owns it once <see cref="Pump"/> first runs.
/// <para>
/// What it holds is bounded as a plain connection's: one frame buffer (a frame up to
/// <see cref="PeerWire.MaxFrameBytes"/>, grown as its bytes arrive) and the <c>SslStream</c>'s
/// record buffer, and each turn of the loop reads at most <see cref="MaxReceivesPerTurn"/> times;
/// what the loop has not read waits in TCP, which holds the sender back.
/// </para>
/// </summary>
public sealed class TlsPeerConnection : IDisposable
{
    /// <summary>Socket reads per turn of the loop (each fills the <c>SslStream</c>'s read, some KiB), so one busy peer cannot hold up the others.</summary>
    public const int MaxReceivesPerTurn = 8;

    private static readonly byte[] PingFrame = PeerWire.Ping.ToArray();

    private readonly SslStream _stream;
    private readonly LoopFedStream _raw;
    private PipeReader? _helloReader;
    private readonly PeerFrameReader _frames = new();
    /// <summary>The <c>SslStream</c> read into <see cref="_frames"/>' free space, while one is out.</summary>
    private ValueTask<int> _read;
    private bool _reading;
    private ValueTask _pingWrite;
    private long _lastHeard = Stopwatch.GetTimestamp();
    private bool _ended;
    private bool _disposed;

    /// <param name="raw">The stream under <paramref name="stream"/>, the loop feeds it.</param>
    /// <param name="helloReader">The reader the hello was read with: what it read past the hello is this connection's first bytes.</param>
    public TlsPeerConnection(SslStream stream, LoopFedStream raw, PipeReader helloReader, EndPoint? remote, int peerId)
    {
        _stream = stream;
        _raw = raw;
        _helloReader = helloReader;
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
    /// <summary>The socket the loop polls.</summary>
    public Socket Socket => _raw.Socket;
    /// <summary>When bytes last arrived (a Stopwatch timestamp).</summary>
    public long LastHeard => _lastHeard;
    /// <summary>The peer closed the connection (seen by the last <see cref="Pump"/>).</summary>
    public bool Ended => _ended;
    /// <summary>The loop has taken it over (its first <see cref="Pump"/>).</summary>
    public bool Started => _helloReader is null;
    /// <summary>The frame buffer's size now (it grows only with the bytes of a frame larger than it).</summary>
    public int BufferCapacity => _frames.Capacity;

    /// <summary>
    /// The loop, when the socket is readable (and once when it takes the connection over): reads what
    /// arrived, at most <see cref="MaxReceivesPerTurn"/> times, and hands each whole batch to
    /// <paramref name="deliver"/>. False when the connection ended.
    /// </summary>
    /// <exception cref="InvalidDataException">A frame of a length out of range or that is not a MessageBatch.</exception>
    /// <exception cref="IOException">TLS failed (a record that does not decrypt), or the connection broke.</exception>
    /// <exception cref="SocketException">The connection broke.</exception>
    public bool Pump(Action<P.MessageBatch> deliver)
    {
        if (_ended) return false;
        if (_helloReader is { } early)
        {
            // What the hello's reader read ahead comes first; then the loop feeds the stream.
            _helloReader = null;
            if (early.TryRead(out var result))
            {
                _frames.Append(result.Buffer);
                early.AdvanceTo(result.Buffer.End);
            }
            early.Complete();
            _raw.HandToLoop();
            Deliver(deliver);
        }
        var receives = 0;
        while (true)
        {
            if (_reading)
            {
                if (!_read.IsCompleted)
                {
                    if (receives++ == MaxReceivesPerTurn || !_raw.Receive()) return true;
                    continue;
                }
                _reading = false;
                var n = _read.GetAwaiter().GetResult();
                if (n == 0)
                {
                    _ended = true;
                    return false;
                }
                _frames.Received(n);
                _lastHeard = Stopwatch.GetTimestamp();
                Deliver(deliver);
            }
            _read = _stream.ReadAsync(_frames.Free);
            _reading = true;
        }
    }

    /// <summary>Every whole frame buffered, in order; one acknowledgement for the pings among them (the sender has one out at a time).</summary>
    private void Deliver(Action<P.MessageBatch> deliver)
    {
        var pinged = false;
        while (_frames.TryTake(out var batch, out _))
        {
            if (batch is null) pinged = true;
            else deliver(batch);
        }
        _frames.Compact();
        if (pinged) AnswerPing();
    }

    /// <summary>
    /// Not sent while bytes still wait to go out (that peer reads nothing, so it times out), nor
    /// while an earlier acknowledgement is being written.
    /// </summary>
    private void AnswerPing()
    {
        if (!_pingWrite.IsCompleted || _raw.HasUnsent) return;
        _pingWrite.GetAwaiter().GetResult(); // an earlier write's failure ends the connection here
        _pingWrite = _stream.WriteAsync(PingFrame);
        if (_pingWrite.IsCompleted) _pingWrite.GetAwaiter().GetResult();
        else _pingWrite = new ValueTask(_pingWrite.AsTask()); // may be looked at more than once
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _ended = true;
        _helloReader?.Complete();
        _stream.Dispose();
    }
}
