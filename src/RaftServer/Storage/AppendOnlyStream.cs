namespace RaftServer.Storage;

/// <summary>
/// What a snapshot body writer is given: it can only append to the file (no seeking over the
/// header, no closing the file under the store) and the store learns how many bytes it wrote.
/// </summary>
internal sealed class AppendOnlyStream(Stream inner, WriteBehind? writeBehind = null) : Stream
{
    public long Written { get; private set; }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        inner.Write(buffer);
        Written += buffer.Length;
        writeBehind?.Wrote();
    }

    public override void WriteByte(byte value)
    {
        inner.WriteByte(value);
        Written++;
        writeBehind?.Wrote();
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => Written;
    public override long Position { get => Written; set => throw new NotSupportedException(); }
    /// <summary>Passes on to the file's buffer only; the store fsyncs once the whole file is written.</summary>
    public override void Flush() => inner.Flush();
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
