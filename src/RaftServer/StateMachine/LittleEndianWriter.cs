using System.Buffers.Binary;

namespace RaftServer.StateMachine;

/// <summary>
/// Writes little-endian integers and byte runs to a stream through one fixed buffer, so a large
/// snapshot streams out in buffer-sized writes without ever being held in memory whole. Runs
/// larger than the buffer go straight to the stream. Call <see cref="Flush"/> at the end; the
/// stream is not disposed.
/// </summary>
internal sealed class LittleEndianWriter(Stream stream, int bufferSize = 64 << 10)
{
    private readonly byte[] _buffer = new byte[bufferSize];
    private int _used;

    public void WriteByte(byte value)
    {
        Reserve(1)[0] = value;
        Advance(1);
    }

    public void WriteInt32(int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(Reserve(4), value);
        Advance(4);
    }

    public void WriteInt64(long value)
    {
        BinaryPrimitives.WriteInt64LittleEndian(Reserve(8), value);
        Advance(8);
    }

    public void WriteUInt64(ulong value)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(Reserve(8), value);
        Advance(8);
    }

    public void WriteBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length > _buffer.Length - _used)
        {
            Flush();
            if (bytes.Length > _buffer.Length)
            {
                stream.Write(bytes);
                return;
            }
        }
        bytes.CopyTo(_buffer.AsSpan(_used));
        _used += bytes.Length;
    }

    /// <summary>Room for <paramref name="count"/> bytes at the end of the buffer, flushing first if needed.</summary>
    public Span<byte> Reserve(int count)
    {
        if (_buffer.Length - _used < count) Flush();
        return _buffer.AsSpan(_used, count);
    }

    /// <summary>Marks <paramref name="count"/> bytes obtained from <see cref="Reserve"/> as written.</summary>
    public void Advance(int count) => _used += count;

    public void Flush()
    {
        if (_used == 0) return;
        stream.Write(_buffer, 0, _used);
        _used = 0;
    }
}
