using System.Buffers;
using System.Buffers.Binary;
using RaftServer.Transport;
using P = RaftPS.Protocol;

namespace RaftServer.Tests.Transport;

public sealed class PeerWireTests
{
    private static P.MessageBatch Batch(int from, params long[] terms)
    {
        var b = new P.MessageBatch { From = from };
        foreach (var t in terms) b.Messages.Add(new P.RaftMessage { Type = P.MessageType.Heartbeat, From = from, To = 2, Term = t });
        return b;
    }

    [Fact]
    public void Frames_read_back_in_order_and_only_when_whole()
    {
        var buffer = new byte[8]; // too small on purpose: Write grows it
        byte[] Frame(P.MessageBatch batch)
        {
            var length = PeerWire.Write(batch, ref buffer); // may replace buffer: read it only after
            return buffer.AsSpan(0, length).ToArray();
        }
        var first = Frame(Batch(1, 5, 6));
        var stream = first.Concat(Frame(Batch(1, 7))).ToArray();

        for (var cut = 0; cut < first.Length; cut++)
        {
            var partial = new ReadOnlySequence<byte>(stream, 0, cut);
            Assert.False(PeerWire.TryRead(ref partial, out _));
            Assert.Equal(cut, partial.Length); // nothing consumed
        }
        var all = new ReadOnlySequence<byte>(stream);
        Assert.True(PeerWire.TryRead(ref all, out var a));
        Assert.True(PeerWire.TryRead(ref all, out var b));
        Assert.False(PeerWire.TryRead(ref all, out _));
        Assert.Equal(0, all.Length);
        Assert.Equal([5L, 6L], a.Messages.Select(m => m.Term));
        Assert.Equal(7, Assert.Single(b.Messages).Term);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(PeerWire.MaxFrameBytes + 1)]
    public void A_length_out_of_range_is_refused(int length)
    {
        var bytes = new byte[16];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, length);
        var seq = new ReadOnlySequence<byte>(bytes);
        Assert.Throws<InvalidDataException>(() => PeerWire.TryRead(ref seq, out _));
    }

    [Fact]
    public void Bytes_that_are_not_a_batch_are_refused()
    {
        byte[] bytes = [4, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF];
        var seq = new ReadOnlySequence<byte>(bytes);
        Assert.Throws<InvalidDataException>(() => PeerWire.TryRead(ref seq, out _));
    }

    [Fact]
    public void The_preface_cannot_be_mistaken_for_HTTP2()
    {
        Assert.NotEqual((byte)'P', PeerWire.Preface[0]); // "PRI * HTTP/2.0..."
    }
}
