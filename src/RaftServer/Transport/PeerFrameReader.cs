using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>
/// Reads one peer's message stream (<see cref="PeerWire"/> frames, the preface already taken)
/// from its socket: each <see cref="Receive"/> is one socket read, after which every frame that
/// has arrived whole is delivered in order. The buffer grows, as the bytes come, to hold a frame
/// larger than it.
/// A ping (an empty frame) is not delivered: it sets <see cref="PingReceived"/>, for the caller
/// to acknowledge.
/// </summary>
public sealed class PeerFrameReader(int initialBytes = 64 << 10)
{
    private byte[] _buffer = new byte[initialBytes];
    private int _filled;

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
        var consumed = 0;
        while (true)
        {
            var rest = new ReadOnlySequence<byte>(_buffer, consumed, _filled - consumed);
            if (!PeerWire.TryRead(ref rest, out var batch)) break;
            var frameBytes = _filled - (int)rest.Length - consumed;
            consumed += frameBytes;
            if (frameBytes == PeerWire.HeaderBytes) PingReceived = true;
            else deliver(batch);
        }
        if (consumed > 0)
        {
            Array.Copy(_buffer, consumed, _buffer, 0, _filled - consumed);
            _filled -= consumed;
        }
        // A frame that has begun, larger than the buffer, which its bytes have filled: double the
        // buffer, up to the frame's length (TryRead has checked it), so the buffer is never full at
        // the next read. It grows with the bytes received, not with the length a frame announces:
        // a peer must send a frame's bytes to make this node hold them.
        if (_filled == _buffer.Length)
        {
            var whole = PeerWire.HeaderBytes + BinaryPrimitives.ReadInt32LittleEndian(_buffer);
            Array.Resize(ref _buffer, (int)Math.Min(whole, 2L * _buffer.Length));
        }
        return true;
    }

    /// <summary>The buffer's size now (it only grows, with the bytes of a frame larger than it).</summary>
    public int Capacity => _buffer.Length;

    /// <summary>Bytes received and not yet delivered (the start of a frame).</summary>
    public int Buffered => _filled;
}
