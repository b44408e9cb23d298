using System.Runtime.CompilerServices;
using Google.Protobuf;
using Grpc.Core;
using RaftServer.Consensus;
using RaftServer.Transport;
using P = RaftPS.Protocol;

namespace RaftServer.Tests.Transport;

/// <summary>The sender's chunking loop alone, against a writer that records what it was given.</summary>
public sealed class SnapshotPumpTests
{
    /// <summary>Copies each chunk as gRPC's serialization would, and notes how far the source had been read then.</summary>
    private sealed class RecordingWriter(FakeSnapshotSource source) : IAsyncStreamWriter<P.SnapshotChunk>
    {
        public List<(P.SnapshotChunk Chunk, long SourcePosition)> Written { get; } = new();
        public WriteOptions? WriteOptions { get; set; }

        public Task WriteAsync(P.SnapshotChunk message)
        {
            // Serialize now, as gRPC does inside WriteAsync: the chunk's bytes alias the sender's buffer.
            Written.Add((P.SnapshotChunk.Parser.ParseFrom(message.ToByteArray()), source.MaxPosition));
            return Task.CompletedTask;
        }
    }

    private static P.SnapshotHeader Header(long total) => new() { From = 1, To = 2, Term = 4, SnapshotIndex = 10, SnapshotTerm = 3, TotalLength = total };

    private static async Task<RecordingWriter> Pump(FakeSnapshotSource source, long total, int chunk)
    {
        var writer = new RecordingWriter(source);
        var sent = new StrongBox<long>();
        var meta = new SnapshotMetadata(10, 3, [1, 2, 3]);
        await using var stream = source.OpenSnapshot(meta);
        await SnapshotSender.PumpAsync(stream, writer, Header(total), new byte[chunk], sent, CancellationToken.None);
        Assert.Equal(total, sent.Value);
        return writer;
    }

    [Fact]
    public async Task Chunks_tile_the_file_and_the_reader_never_runs_ahead_of_the_writer()
    {
        const int chunk = 1 << 20;
        var data = new byte[5 * chunk + 123];
        new Random(5).NextBytes(data);
        var source = new FakeSnapshotSource(data);

        var writer = await Pump(source, data.Length, chunk);

        Assert.Equal(6, writer.Written.Count);
        long offset = 0;
        var received = new List<byte>();
        foreach (var (c, position) in writer.Written)
        {
            Assert.Equal(offset, c.Offset);
            Assert.InRange(c.Data.Length, 1, chunk);
            // At each write the file had been read exactly up to the end of that chunk: one chunk in memory.
            Assert.Equal(offset + c.Data.Length, position);
            Assert.Equal(c == writer.Written[0].Chunk, c.Header is not null);
            Assert.Equal(c == writer.Written[^1].Chunk, c.Done);
            offset += c.Data.Length;
            received.AddRange(c.Data);
        }
        Assert.Equal(data, received.ToArray());
        Assert.Equal(123, writer.Written[^1].Chunk.Data.Length);
        Assert.Equal(data.Length, writer.Written[0].Chunk.Header.TotalLength);
        Assert.True(source.LargestRead <= chunk);
    }

    [Fact]
    public async Task An_empty_file_is_one_chunk_with_the_header_and_done()
    {
        var writer = await Pump(new FakeSnapshotSource([]), 0, 1024);

        var (c, _) = Assert.Single(writer.Written);
        Assert.True(c.Done);
        Assert.NotNull(c.Header);
        Assert.Equal(0, c.Data.Length);
    }

    [Fact]
    public async Task A_file_shorter_than_announced_fails_instead_of_sending_done()
    {
        var source = new FakeSnapshotSource(new byte[3000]);
        var writer = new RecordingWriter(source);
        await using var stream = source.OpenSnapshot(new SnapshotMetadata(10, 3, [1]));

        await Assert.ThrowsAsync<EndOfStreamException>(() =>
            SnapshotSender.PumpAsync(stream, writer, Header(5000), new byte[1024], new StrongBox<long>(), CancellationToken.None));
        Assert.DoesNotContain(writer.Written, w => w.Chunk.Done);
    }
}
