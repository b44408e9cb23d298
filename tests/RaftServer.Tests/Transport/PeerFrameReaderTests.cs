using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using RaftServer.Transport;
using P = RaftPS.Protocol;

namespace RaftServer.Tests.Transport;

/// <summary>The node loop's reading of a peer's connection: frames split anyhow, frames larger than the buffer.</summary>
public sealed class PeerFrameReaderTests
{
    private static (Socket Sender, Socket Receiver) Pair()
    {
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var sender = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        sender.Connect(listener.LocalEndPoint!);
        var receiver = listener.Accept();
        receiver.ReceiveTimeout = 30_000; // a test that would hang fails instead
        return (sender, receiver);
    }

    private static byte[] Frame(long term, int payloadBytes = 0)
    {
        var batch = new P.MessageBatch { From = 1 };
        var m = new P.RaftMessage { Type = P.MessageType.Append, From = 1, To = 2, Term = term };
        if (payloadBytes > 0) m.Entries.Add(new P.LogEntry { Index = 1, Term = term, Data = ByteString.CopyFrom(new byte[payloadBytes]) });
        batch.Messages.Add(m);
        var buffer = new byte[16];
        var n = PeerWire.Write(batch, ref buffer);
        return buffer.AsSpan(0, n).ToArray();
    }

    [Fact]
    public async Task Frames_larger_than_the_buffer_and_split_across_reads_arrive_whole_and_in_order()
    {
        var (sender, receiver) = Pair();
        using (sender)
        using (receiver)
        {
            var bytes = Frame(1).Concat(Frame(2, payloadBytes: 300_000)).Concat(Frame(3)).Concat(Frame(4, payloadBytes: 70_000)).ToArray();
            var reader = new PeerFrameReader(initialBytes: 16);
            var terms = new List<long>();
            var sizes = new List<int>();
            // The sender writes in uneven pieces while the reader reads what has come.
            var writing = Task.Run(() =>
            {
                for (var at = 0; at < bytes.Length;)
                {
                    var n = Math.Min(bytes.Length - at, 1 + at % 7_919);
                    sender.Send(bytes, at, n, SocketFlags.None);
                    at += n;
                }
            });
            while (terms.Count < 4)
                Assert.True(reader.Receive(receiver, b =>
                {
                    terms.Add(b.Messages[0].Term);
                    sizes.Add(b.Messages[0].Entries.Sum(e => e.Data.Length));
                }));
            await writing;
            Assert.Equal([1L, 2L, 3L, 4L], terms);
            Assert.Equal([0, 300_000, 0, 70_000], sizes);
        }
    }

    [Fact]
    public void The_end_of_the_connection_reads_as_false()
    {
        var (sender, receiver) = Pair();
        using (receiver)
        {
            sender.Send(Frame(7));
            sender.Shutdown(SocketShutdown.Send);
            sender.Dispose();
            var reader = new PeerFrameReader();
            var got = new List<long>();
            while (reader.Receive(receiver, b => got.Add(b.Messages[0].Term))) { }
            Assert.Equal([7L], got);
        }
    }

    [Fact]
    public void A_frame_length_out_of_range_is_invalid_data()
    {
        var (sender, receiver) = Pair();
        using (sender)
        using (receiver)
        {
            sender.Send(new byte[] { 0xFF, 0xFF, 0xFF, 0x7F, 0 });
            var reader = new PeerFrameReader();
            Assert.Throws<InvalidDataException>(() =>
            {
                while (reader.Receive(receiver, _ => { })) { }
            });
        }
    }

    [Fact]
    public void A_frame_that_announces_64_MiB_makes_the_buffer_grow_only_with_the_bytes_that_came()
    {
        var (sender, receiver) = Pair();
        using (sender)
        using (receiver)
        {
            var reader = new PeerFrameReader(initialBytes: 64 << 10);
            var header = new byte[PeerWire.HeaderBytes];
            System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(header, PeerWire.MaxFrameBytes);
            sender.Send(header);
            var sent = 0;
            var chunk = new byte[100_000];
            while (sent < 300_000)
            {
                sender.Send(chunk);
                sent += chunk.Length;
                while (reader.Buffered < sent + PeerWire.HeaderBytes)
                    Assert.True(reader.Receive(receiver, _ => Assert.Fail("no frame is complete")));
            }
            Assert.True(reader.Capacity <= 2 * (sent + PeerWire.HeaderBytes), $"the buffer is {reader.Capacity} bytes after {sent} received");
            Assert.True(reader.Capacity < PeerWire.MaxFrameBytes / 8);
        }
    }
}
