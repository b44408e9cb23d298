using System.IO.Hashing;

namespace RaftServer.Storage;

/// <summary>
/// The checksum in a snapshot file's trailer, of every byte before it: XxHash3 (64 bits) in files of
/// <see cref="SnapshotFormat.Magic"/>, XxHash64 in the earlier formats (read, never written). The
/// algorithm follows the file's first 8 bytes, its magic, so bytes can be appended as they arrive
/// (an upload hashes each chunk as it is received). XxHash3 is vectorised: on this project's 2-core
/// VM it hashed 1 MiB blocks several times faster than XxHash64, whose cost was a tenth of a node's
/// CPU under 1 MiB puts (every snapshot is hashed once written, and again when loaded or received).
/// </summary>
internal sealed class SnapshotChecksum
{
    private readonly byte[] _magic = new byte[8];
    private int _magicBytes;
    private XxHash3? _hash;
    private XxHash64? _legacy;

    public void Append(ReadOnlySpan<byte> bytes)
    {
        if (_magicBytes < _magic.Length)
        {
            var n = Math.Min(_magic.Length - _magicBytes, bytes.Length);
            bytes[..n].CopyTo(_magic.AsSpan(_magicBytes));
            _magicBytes += n;
            bytes = bytes[n..];
            if (_magicBytes < _magic.Length) return;
            if (SnapshotFormat.IsXxHash64Magic(_magic))
            {
                _legacy = new XxHash64();
                _legacy.Append(_magic);
            }
            else
            {
                _hash = new XxHash3();
                _hash.Append(_magic);
            }
        }
        if (_legacy is not null) _legacy.Append(bytes);
        else _hash!.Append(bytes);
    }

    /// <summary>The checksum of what was appended (fewer than 8 bytes: of those, by XxHash3).</summary>
    public ulong Current =>
        _legacy?.GetCurrentHashAsUInt64() ?? _hash?.GetCurrentHashAsUInt64() ?? XxHash3.HashToUInt64(_magic.AsSpan(0, _magicBytes));
}
