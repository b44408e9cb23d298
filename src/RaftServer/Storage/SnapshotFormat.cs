using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using RaftServer.Consensus;

namespace RaftServer.Storage;

/// <summary>What a snapshot file's header says: the snapshot it holds and how long its body is.</summary>
internal sealed record SnapshotHeader(SnapshotMetadata Meta, long BodyLength, int HeaderLength)
{
    /// <summary>The length the whole file must have: header, body, trailer.</summary>
    public long FileLength => HeaderLength + BodyLength + SnapshotFormat.TrailerLength;
}

/// <summary>
/// The snapshot file format, little-endian:
/// <code>
/// 8   magic "RAFTSNP3"
/// 8   i64 index          the last log entry the snapshot covers
/// 8   i64 term           that entry's term
/// 4   i32 config length
/// n   the configuration in effect at index (Consensus.Configuration.Encode: ids, roles, addresses)
/// 8   i64 body length
/// ..  body               the state machine (KvSnapshotCodec)
/// 8   u64 XxHash3 (64 bits) of every byte before it (<see cref="SnapshotChecksum"/>)
/// </code>
/// Files of the two earlier formats are still read: "RAFTSNP2" is this layout with an XxHash64
/// checksum; "RAFTSNP1" (also XxHash64), written before snapshots carried addresses, has a member
/// count and the members' ids where the configuration is, and its members are voters without
/// addresses, which the host fills in from what else it knows. Earlier versions of the server do
/// not read "RAFTSNP3" files (nor receive them from a leader): upgrade every node of a cluster.
/// Files are named <c>{index:D20}-{term:D20}.snap</c> so that names sort like the snapshots. A follower receives
/// the leader's file byte for byte, so this format is also the wire format of InstallSnapshot.
/// </summary>
internal static class SnapshotFormat
{
    public static ReadOnlySpan<byte> Magic => "RAFTSNP3"u8;
    /// <summary>The format before <see cref="Magic"/>: the same layout, an XxHash64 checksum.</summary>
    private static ReadOnlySpan<byte> XxHash64Magic => "RAFTSNP2"u8;
    /// <summary>The first format: member ids without addresses, an XxHash64 checksum.</summary>
    private static ReadOnlySpan<byte> LegacyMagic => "RAFTSNP1"u8;

    /// <summary>Whether a file beginning with <paramref name="magic"/> has an XxHash64 checksum (the two earlier formats).</summary>
    public static bool IsXxHash64Magic(ReadOnlySpan<byte> magic) => magic.SequenceEqual(XxHash64Magic) || magic.SequenceEqual(LegacyMagic);

    public const int TrailerLength = 8;
    public const string Extension = ".snap";
    /// <summary>The largest configuration encoding read (bounds what a damaged length makes us allocate).</summary>
    public const int MaxConfigBytes = 1 << 20;
    private const int FixedPrefix = 8 + 8 + 8 + 4; // magic, index, term, config length (or member count)

    /// <summary>A header's bytes: the fixed prefix, the configuration, the body length.</summary>
    public static int HeaderLength(int configBytes) => FixedPrefix + configBytes + 8;
    public static int MinimumFileLength => HeaderLength(0) + TrailerLength;

    public static string FileName(SnapshotMetadata meta) =>
        string.Create(CultureInfo.InvariantCulture, $"{meta.Index:D20}-{meta.Term:D20}{Extension}");

    public static bool TryParseFileName(string path, out long index, out long term)
    {
        index = term = 0;
        var name = Path.GetFileName(path);
        return name.Length == 20 + 1 + 20 + Extension.Length && name.EndsWith(Extension, StringComparison.Ordinal) && name[20] == '-'
            && long.TryParse(name.AsSpan(0, 20), NumberStyles.None, CultureInfo.InvariantCulture, out index)
            && long.TryParse(name.AsSpan(21, 20), NumberStyles.None, CultureInfo.InvariantCulture, out term);
    }

    /// <exception cref="ArgumentException">not a snapshot anyone could install (index or term below 1).</exception>
    public static void Validate(SnapshotMetadata meta)
    {
        ArgumentNullException.ThrowIfNull(meta);
        ArgumentNullException.ThrowIfNull(meta.Configuration);
        if (meta.Index < 1 || meta.Term < 1) throw new ArgumentException($"a snapshot needs index and term >= 1, not {meta.Index}/{meta.Term}");
    }

    public static bool SameMeta(SnapshotMetadata a, SnapshotMetadata b) =>
        a.Index == b.Index && a.Term == b.Term && a.Configuration.Equals(b.Configuration);

    public static string Describe(SnapshotMetadata meta) => $"index {meta.Index} term {meta.Term} members [{meta.Configuration}]";

    /// <summary>The header of a new file; <see cref="BodyLengthOffset"/> says where to patch the body length in.</summary>
    public static byte[] EncodeHeader(SnapshotMetadata meta, long bodyLength)
    {
        var config = meta.Configuration.Encode();
        var header = new byte[HeaderLength(config.Length)];
        var span = header.AsSpan();
        Magic.CopyTo(span);
        BinaryPrimitives.WriteInt64LittleEndian(span[8..], meta.Index);
        BinaryPrimitives.WriteInt64LittleEndian(span[16..], meta.Term);
        BinaryPrimitives.WriteInt32LittleEndian(span[24..], config.Length);
        config.CopyTo(span[FixedPrefix..]);
        BinaryPrimitives.WriteInt64LittleEndian(span[(FixedPrefix + config.Length)..], bodyLength);
        return header;
    }

    /// <summary>Where the body length sits in a header made by <see cref="EncodeHeader"/>.</summary>
    public static int BodyLengthOffset(byte[] header) => header.Length - 8;

    /// <summary>Reads and checks the header at the stream's position, appending its bytes to <paramref name="hash"/>.</summary>
    /// <exception cref="InvalidDataException">short, bad magic or impossible fields.</exception>
    public static SnapshotHeader ReadHeader(Stream stream, SnapshotChecksum hash)
    {
        Span<byte> prefix = stackalloc byte[FixedPrefix];
        ReadExactly(stream, prefix, "the header");
        var legacy = prefix[..8].SequenceEqual(LegacyMagic);
        if (!legacy && !prefix[..8].SequenceEqual(Magic) && !prefix[..8].SequenceEqual(XxHash64Magic)) throw new InvalidDataException("not a RaftPS snapshot (bad magic)");
        var index = BinaryPrimitives.ReadInt64LittleEndian(prefix[8..]);
        var term = BinaryPrimitives.ReadInt64LittleEndian(prefix[16..]);
        var count = BinaryPrimitives.ReadInt32LittleEndian(prefix[24..]);
        if (index < 1 || term < 1) throw new InvalidDataException($"impossible index/term {index}/{term} in the header");
        var configBytes = legacy ? 4L * count : count;
        if (count < 0 || configBytes > MaxConfigBytes) throw new InvalidDataException($"impossible {(legacy ? "member count" : "configuration length")} {count} in the header");
        hash.Append(prefix);

        var rest = new byte[configBytes + 8];
        ReadExactly(stream, rest, "the header");
        hash.Append(rest);
        Configuration configuration;
        if (legacy)
        {
            var ids = new int[count];
            for (var i = 0; i < count; i++) ids[i] = BinaryPrimitives.ReadInt32LittleEndian(rest.AsSpan(4 * i));
            try
            {
                configuration = Configuration.FromVoters(ids);
            }
            catch (ArgumentException e)
            {
                throw new InvalidDataException($"impossible members in the header: {e.Message}", e);
            }
        }
        else
        {
            configuration = Configuration.Decode(rest.AsSpan(0, (int)configBytes));
        }
        var bodyLength = BinaryPrimitives.ReadInt64LittleEndian(rest.AsSpan((int)configBytes));
        if (bodyLength < 0) throw new InvalidDataException($"negative body length {bodyLength} in the header");
        return new SnapshotHeader(new SnapshotMetadata(index, term, configuration), bodyLength, FixedPrefix + (int)configBytes + 8);
    }

    /// <summary>Reads the 8-byte trailer and compares it with the checksum of everything before it.</summary>
    /// <exception cref="InvalidDataException">they differ, or the file ends first.</exception>
    public static void CheckTrailer(Stream stream, SnapshotChecksum hash)
    {
        Span<byte> trailer = stackalloc byte[TrailerLength];
        ReadExactly(stream, trailer, "the checksum");
        var stored = BinaryPrimitives.ReadUInt64LittleEndian(trailer);
        var actual = hash.Current;
        if (stored != actual) throw new InvalidDataException($"checksum mismatch (stored {stored:x16}, computed {actual:x16})");
    }

    /// <summary>Checks a whole file: header, length, checksum. Reads every byte; the body is not parsed.</summary>
    /// <exception cref="InvalidDataException">anything is wrong; the message says what (not which file).</exception>
    public static SnapshotHeader Verify(Stream file)
    {
        var hash = new SnapshotChecksum();
        var header = ReadHeader(file, hash);
        if (file.Length != header.FileLength)
            throw new InvalidDataException($"the file is {file.Length} bytes but its header says {header.FileLength}");
        HashBytes(file, header.BodyLength, hash);
        CheckTrailer(file, hash);
        return header;
    }

    /// <summary>Appends the next <paramref name="count"/> bytes of <paramref name="stream"/> to <paramref name="hash"/>, a megabyte at a time.</summary>
    public static void HashBytes(Stream stream, long count, SnapshotChecksum hash)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            while (count > 0)
            {
                var n = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, count));
                if (n == 0) throw new InvalidDataException($"the file ends {count} bytes early");
                hash.Append(buffer.AsSpan(0, n));
                count -= n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static void ReadExactly(Stream stream, Span<byte> destination, string what)
    {
        var got = stream.ReadAtLeast(destination, destination.Length, throwOnEndOfStream: false);
        if (got < destination.Length) throw new InvalidDataException($"the file ends inside {what}");
    }
}
