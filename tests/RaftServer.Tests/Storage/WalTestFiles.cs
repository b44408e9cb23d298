using System.Buffers.Binary;

namespace RaftServer.Tests.Storage;

/// <summary>Reads segment files the way a test needs to damage them: where their records end.</summary>
internal static class WalTestFiles
{
    /// <summary>
    /// The offset where a segment's records end: the first all-zero record header (the rest of the
    /// file is the zeros it was made with) or the end of the file. Walks the length fields only.
    /// </summary>
    public static int RecordsEnd(byte[] segment)
    {
        var pos = 8; // the magic
        while (pos + 12 <= segment.Length)
        {
            var length = BinaryPrimitives.ReadUInt32LittleEndian(segment.AsSpan(pos));
            if (length == 0) break;
            pos += 12 + (int)length;
        }
        return Math.Min(pos, segment.Length);
    }

    public static int RecordsEnd(string path) => RecordsEnd(File.ReadAllBytes(path));
}
