using System.Buffers.Binary;

namespace RaftServer.StateMachine;

/// <summary>
/// Reads what <see cref="LittleEndianWriter"/> wrote, through one fixed buffer. Running out of
/// data before a value is complete throws <see cref="InvalidDataException"/> (a truncated
/// snapshot is damage, never a short read to ignore).
/// </summary>
internal sealed class LittleEndianReader(Stream stream, int bufferSize = 64 << 10)
{
    private readonly byte[] _buffer = new byte[bufferSize];
    private int _start;
    private int _end;

    /// <summary>Bytes consumed from the stream so far (for error messages).</summary>
    public long Position { get; private set; }

    public byte ReadByte() => Take(1)[0];
    public int ReadInt32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));
    public long ReadInt64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));
    public ulong ReadUInt64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

    /// <summary>Fills <paramref name="destination"/>, from the buffer and then straight from the stream.</summary>
    public void ReadExactly(Span<byte> destination)
    {
        var fromBuffer = Math.Min(destination.Length, _end - _start);
        _buffer.AsSpan(_start, fromBuffer).CopyTo(destination);
        _start += fromBuffer;
        Position += fromBuffer;
        var rest = destination[fromBuffer..];
        if (rest.IsEmpty) return;
        if (rest.Length < _buffer.Length)
        {
            Take(rest.Length).CopyTo(rest);
            return;
        }
        var got = stream.ReadAtLeast(rest, rest.Length, throwOnEndOfStream: false);
        Position += got;
        if (got < rest.Length) throw Truncated(rest.Length - got);
    }

    /// <summary>True when every byte of the stream has been consumed.</summary>
    public bool AtEnd()
    {
        if (_start < _end) return false;
        _start = 0;
        _end = stream.Read(_buffer, 0, _buffer.Length);
        return _end == 0;
    }

    /// <summary>The next <paramref name="count"/> (at most the buffer size) bytes, refilling the buffer as needed.</summary>
    private ReadOnlySpan<byte> Take(int count)
    {
        if (_end - _start < count)
        {
            var kept = _end - _start;
            _buffer.AsSpan(_start, kept).CopyTo(_buffer);
            _start = 0;
            _end = kept + stream.ReadAtLeast(_buffer.AsSpan(kept), count - kept, throwOnEndOfStream: false);
            if (_end < count) throw Truncated(count - _end);
        }
        var span = _buffer.AsSpan(_start, count);
        _start += count;
        Position += count;
        return span;
    }

    private InvalidDataException Truncated(int missing) =>
        new($"the data ends {missing} bytes early (at offset {Position})");
}
