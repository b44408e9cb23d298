using System.Buffers;
using System.Buffers.Binary;
using Google.Protobuf;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>
/// The framing of a peer message stream: a plain TCP connection to the peer's port that opens
/// with <see cref="Preface"/>, then one <see cref="P.PeerHello"/> frame each way (the connecting
/// node's first, then the accepting node's answer: who each is and of which cluster), then carries
/// one <see cref="P.MessageBatch"/> per frame (a 4-byte little-endian length, then the protobuf
/// bytes) from the connecting node. Raft replies travel on the peer's own connection to us; the
/// one thing sent back on a connection after the hello is the acknowledgement of a ping.
/// A ping is an empty frame (length 0) from the connecting side; the receiving side answers each
/// with an empty frame of its own (<see cref="PeerClient"/> ends a connection whose pings go
/// unanswered). Not gRPC for this one path because it is the latency of every Raft round
/// (a read's heartbeat round, a write's append): HTTP/2 framing and its extra thread hand-offs
/// cost about 100 us per round trip here (docs/design.md, "The peer transport").
/// </summary>
public static class PeerWire
{
    /// <summary>Sent once when the connection opens. Its first byte is not 'P', the first byte of
    /// the HTTP/2 preface, so the listener can tell the two apart by one byte.</summary>
    public static ReadOnlySpan<byte> Preface => "RAFTPS-PEER/2\n"u8;

    /// <summary>The preface of the peer protocol before the hello (no cluster identity): refused with a
    /// line that says to upgrade that node.</summary>
    public static ReadOnlySpan<byte> PrefaceVersion1 => "RAFTPS-PEER/1\n"u8;

    /// <summary>The preface of a peer TLS connection (<see cref="PeerTls"/>): as long as <see cref="Preface"/>
    /// and with the same first byte; the accepting node echoes it, then the TLS handshake follows.</summary>
    public static ReadOnlySpan<byte> TlsPreface => "RAFTPS-PTLS/2\n"u8;

    /// <summary>A hello is a handful of bytes; a longer one is a broken or foreign peer.</summary>
    public const int MaxHelloBytes = 64;

    /// <summary>As large as the gRPC peer stream allowed: a batch is at most 4 MiB of entries
    /// (<see cref="PeerTransport.MaxBatchBytes"/>) plus headers; more is a broken or foreign peer.</summary>
    public const int MaxFrameBytes = 64 << 20;

    public const int HeaderBytes = 4;

    /// <summary>A ping, and the acknowledgement of one: a frame of length 0.</summary>
    public static ReadOnlySpan<byte> Ping => [0, 0, 0, 0];

    public static void WritePing(Span<byte> destination) => Ping.CopyTo(destination);

    /// <summary>Whether the frame header at the start of <paramref name="frame"/> is an empty frame.</summary>
    public static bool IsPing(ReadOnlySpan<byte> frame) => BinaryPrimitives.ReadInt32LittleEndian(frame) == 0;

    /// <summary>The hello frame (<see cref="HeaderBytes"/> of length, then a <see cref="P.PeerHello"/>) of node <paramref name="nodeId"/> of cluster <paramref name="clusterId"/>.</summary>
    /// <param name="removed">In an answer: the connecting node was removed from the cluster.</param>
    public static byte[] Hello(ulong clusterId, int nodeId, bool removed = false)
    {
        var hello = new P.PeerHello { ClusterId = clusterId, NodeId = nodeId, Removed = removed };
        var size = hello.CalculateSize();
        var frame = new byte[HeaderBytes + size];
        BinaryPrimitives.WriteInt32LittleEndian(frame, size);
        hello.WriteTo(frame.AsSpan(HeaderBytes));
        return frame;
    }

    /// <summary>The length a hello frame's header announces, checked (0 is a hello of a node with id 0 of no cluster).</summary>
    /// <exception cref="InvalidDataException">a length that no hello has.</exception>
    public static int HelloLength(ReadOnlySpan<byte> header)
    {
        var size = BinaryPrimitives.ReadInt32LittleEndian(header);
        if (size is < 0 or > MaxHelloBytes) throw new InvalidDataException($"a hello of {size} bytes (at most {MaxHelloBytes})");
        return size;
    }

    /// <summary>Parses the body of a hello frame.</summary>
    /// <exception cref="InvalidDataException">bytes that are not a hello.</exception>
    public static P.PeerHello ParseHello(ReadOnlySpan<byte> body)
    {
        try
        {
            return P.PeerHello.Parser.ParseFrom(body);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"a hello that cannot be read: {e.Message}", e);
        }
    }

    /// <summary>Writes the frame of <paramref name="batch"/> into <paramref name="buffer"/> (grown if needed); returns its length.</summary>
    public static int Write(P.MessageBatch batch, ref byte[] buffer)
    {
        var size = batch.CalculateSize();
        if (size > MaxFrameBytes) throw new InvalidOperationException($"a batch of {size} bytes is larger than a frame may be ({MaxFrameBytes})");
        if (buffer.Length < HeaderBytes + size) buffer = new byte[Math.Max(HeaderBytes + size, buffer.Length * 2)];
        BinaryPrimitives.WriteInt32LittleEndian(buffer, size);
        batch.WriteTo(buffer.AsSpan(HeaderBytes, size));
        return HeaderBytes + size;
    }

    /// <summary>Takes one whole frame off the front of <paramref name="buffer"/>; false when it has not all arrived yet.</summary>
    /// <exception cref="InvalidDataException">A length out of range or bytes that are not a MessageBatch.</exception>
    public static bool TryRead(ref ReadOnlySequence<byte> buffer, out P.MessageBatch batch)
    {
        batch = null!;
        if (buffer.Length < HeaderBytes) return false;
        Span<byte> header = stackalloc byte[HeaderBytes];
        buffer.Slice(0, HeaderBytes).CopyTo(header);
        var size = BinaryPrimitives.ReadInt32LittleEndian(header);
        if (size is < 0 or > MaxFrameBytes) throw new InvalidDataException($"a frame of {size} bytes (at most {MaxFrameBytes})");
        if (buffer.Length < HeaderBytes + size) return false;
        try
        {
            batch = P.MessageBatch.Parser.ParseFrom(buffer.Slice(HeaderBytes, size));
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"a frame that is not a message batch: {e.Message}", e);
        }
        buffer = buffer.Slice(HeaderBytes + size);
        return true;
    }
}
