using System.Buffers;

namespace RaftServer.Storage;

/// <summary>
/// A read-only view of the next <see cref="Remaining"/> bytes of another stream that appends every
/// byte it passes on to a checksum, so a snapshot body is verified in the same pass that parses it,
/// and a parser cannot read past the body into the trailer.
/// </summary>
internal sealed class ChecksummedReadStream(Stream inner, long length, SnapshotChecksum hash) : Stream
{
    public long Remaining { get; private set; } = length;

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (Remaining == 0 || buffer.IsEmpty) return 0;
        if (buffer.Length > Remaining) buffer = buffer[..(int)Remaining];
        var n = inner.Read(buffer);
        hash.Append(buffer[..n]);
        Remaining -= n;
        return n;
    }

    /// <summary>Reads (and so checksums) whatever the consumer left unread.</summary>
    public void Drain()
    {
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            while (Read(buffer) > 0) { }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
