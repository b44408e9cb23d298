using System.IO.Hashing;
using RaftServer.Storage;

namespace RaftServer.Tests.Storage;

public sealed class SnapshotChecksumTests
{
    private static byte[] File(string magic, int length = 5000)
    {
        var bytes = new byte[length];
        new Random(7).NextBytes(bytes);
        System.Text.Encoding.ASCII.GetBytes(magic).CopyTo(bytes, 0);
        return bytes;
    }

    [Theory]
    [InlineData("RAFTSNP3", false)]
    [InlineData("RAFTSNP2", true)]
    [InlineData("RAFTSNP1", true)]
    [InlineData("NOTASNAP", false)] // refused by the header check; hashed like today's files
    public void The_algorithm_follows_the_magic_however_the_bytes_are_split(string magic, bool xxHash64)
    {
        var bytes = File(magic);
        var expected = xxHash64 ? XxHash64.HashToUInt64(bytes) : XxHash3.HashToUInt64(bytes);
        foreach (var first in new[] { 0, 1, 3, 7, 8, 9, 4999, 5000 })
        {
            var checksum = new SnapshotChecksum();
            checksum.Append(bytes.AsSpan(0, first));
            foreach (var chunk in bytes.AsSpan(first).ToArray().Chunk(1000)) checksum.Append(chunk);
            Assert.Equal(expected, checksum.Current);
        }
    }

    [Fact]
    public void Fewer_than_eight_bytes_have_a_checksum_too()
    {
        var checksum = new SnapshotChecksum();
        checksum.Append("RAFT"u8);
        Assert.Equal(XxHash3.HashToUInt64("RAFT"u8), checksum.Current);
    }
}
