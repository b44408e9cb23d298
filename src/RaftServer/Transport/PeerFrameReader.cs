using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>
/// Reads one peer's message stream (<see cref="PeerWire"/> frames, the preface already taken):
/// bytes go into one buffer (<see cref="Receive"/> reads a socket; a peer TLS connection's reader
/// writes decrypted bytes into <see cref="Free"/>), and every frame that has arrived whole is taken
/// off in order. The buffer grows, as the bytes come, to hold a frame larger than it.
/// A ping (an empty frame) is not delivered by <see cref="Receive"/>: it sets <see cref="PingReceived"/>,
/// for the caller to acknowledge.
/// </summary>
public sealed class PeerFrameReader(int initialBytes = 64 << 10)
{
    private byte[] _buffer = new byte[initialBytes];
    private int _filled;
    private int _consumed;

    /// <summary>A ping arrived since the caller last cleared this.</summary>
    public bool PingReceived { get; set; }

    /// <summary>
    /// One read (it blocks only when nothing has arrived), then the frames it completed, to
    /// <paramref name="deliver"/>. False when the peer closed the connection.
    /// </summary>
    /// <exception cref="InvalidDataException">A frame of a length out of range or that is not a MessageBatch.</exception>
    /// <exception cref="SocketException">The connection broke.</exception>
    public bool Receive(Socket socket, Action<P.MessageBatch> deliver)
    {
        var n = socket.Receive(_buffer, _filled, _buffer.Length - _filled, SocketFlags.None);
        if (n == 0) return false;
        _filled += n;
        while (TryTake(out var batch, out _))
        {
            if (batch is null) PingReceived = true;
            else deliver(batch);
        }
        Compact();
        return true;
    }

    /// <summary>Where the next bytes go (never empty after <see cref="Compact"/>); then call <see cref="Received"/>.</summary>
    public Memory<byte> Free => _buffer.AsMemory(_filled);

    /// <summary><paramref name="count"/> bytes were written at the start of <see cref="Free"/>.</summary>
    public void Received(int count) => _filled += count;

    /// <summary>Bytes received elsewhere (read ahead by another reader), appended; the buffer grows to hold them.</summary>
    public void Append(ReadOnlySequence<byte> bytes)
    {
        Compact();
        if (_buffer.Length - _filled < bytes.Length) Array.Resize(ref _buffer, checked(_filled + (int)bytes.Length));
        bytes.CopyTo(_buffer.AsSpan(_filled));
        _filled += (int)bytes.Length;
    }

    /// <summary>
    /// Takes the next whole frame off the front: <paramref name="batch"/> is null for a ping;
    /// <paramref name="frameBytes"/> is the frame's length with its header. False when no whole frame is there.
    /// Call <see cref="Compact"/> before the next read.
    /// </summary>
    /// <exception cref="InvalidDataException">A frame of a length out of range or that is not a MessageBatch.</exception>
    public bool TryTake(out P.MessageBatch? batch, out int frameBytes)
    {
        var rest = new ReadOnlySequence<byte>(_buffer, _consumed, _filled - _consumed);
        if (!PeerWire.TryRead(ref rest, out var taken))
        {
            batch = null;
            frameBytes = 0;
            return false;
        }
        frameBytes = _filled - (int)rest.Length - _consumed;
        _consumed += frameBytes;
        batch = frameBytes == PeerWire.HeaderBytes ? null : taken;
        return true;
    }

    /// <summary>Moves what is left (the start of a frame) to the front of the buffer, and grows the buffer if that frame fills it.</summary>
    public void Compact()
    {
        if (_consumed > 0)
        {
            Array.Copy(_buffer, _consumed, _buffer, 0, _filled - _consumed);
            _filled -= _consumed;
            _consumed = 0;
        }
        // A frame that has begun, larger than the buffer, which its bytes have filled: double the
        // buffer, up to the frame's length (TryTake has checked it), so the buffer is never full at
        // the next read. It grows with the bytes received, not with the length a frame announces:
        // a peer must send a frame's bytes to make this node hold them.
        if (_filled == _buffer.Length)
        {
            var whole = PeerWire.HeaderBytes + (long)BinaryPrimitives.ReadInt32LittleEndian(_buffer);
            if (whole > _buffer.Length) Array.Resize(ref _buffer, (int)Math.Min(whole, 2L * _buffer.Length));
        }
    }

    /// <summary>The buffer's size now (it only grows, with the bytes of a frame larger than it).</summary>
    public int Capacity => _buffer.Length;

    /// <summary>Bytes received and not yet delivered (the start of a frame).</summary>
    public int Buffered => _filled - _consumed;
}
