using System.Buffers.Binary;

namespace RaftServer.StateMachine;

/// <summary>
/// Four bytes of a key, from an offset, as a number whose order is <see cref="KeyOrder"/>'s: for two
/// keys that share their first <c>offset</c> bytes, a smaller head means a smaller key and a larger
/// head a larger one; equal heads decide nothing (the keys may differ further on, or one may end
/// where the other has zero bytes). <see cref="RecordTree"/> searches these instead of the keys.
/// </summary>
public static class KeyHead
{
    public const int Bytes = 4;

    public static uint Of(ReadOnlySpan<byte> key, int offset)
    {
        uint head;
        if (key.Length - offset >= Bytes)
        {
            head = BinaryPrimitives.ReadUInt32BigEndian(key[offset..]);
            if ((head & 0x80808080) == 0) return head; // ASCII: the bytes are their own rank
            head = 0;
            for (var i = 0; i < Bytes; i++) head = head << 8 | Rank(key[offset + i]);
            return head;
        }
        head = 0;
        for (var i = 0; i < Bytes; i++) head = head << 8 | (offset + i < key.Length ? Rank(key[offset + i]) : 0u);
        return head;
    }

    /// <summary>
    /// A byte's place in <see cref="KeyOrder"/>: byte order, except that the lead bytes F0-F4 (a
    /// character above U+FFFF, a surrogate pair in UTF-16) come before EE and EF (U+E000-U+FFFF).
    /// Ranks: 00-ED as they are, F0-FF to EE-FD, EE and EF to FE and FF.
    /// </summary>
    private static uint Rank(byte b) => b < 0xEE ? b : b >= 0xF0 ? (uint)b - 2 : (uint)b + 0x10;
}

/// <summary>
/// The bytes every key of a <see cref="RecordTree"/> node begins with: their number, and the first
/// <see cref="InlineBytes"/> of them kept in the node itself, so checking that a key shares them
/// reads no key of the node (a cache miss each) unless the prefix is longer.
/// </summary>
public readonly struct KeyPrefix
{
    public const int InlineBytes = 16;

    private readonly ulong _first, _second;

    public int Length { get; }

    private KeyPrefix(int length, ulong first, ulong second)
    {
        Length = length;
        _first = first;
        _second = second;
    }

    /// <summary>The first <paramref name="length"/> bytes of <paramref name="key"/>.</summary>
    public static KeyPrefix Of(ReadOnlySpan<byte> key, int length) =>
        new(length, length > 0 ? Load(key, 0, Math.Min(length, 8)) : 0, length > 8 ? Load(key, 8, Math.Min(length - 8, 8)) : 0);

    /// <summary>Whether <paramref name="key"/> has the prefix's first <see cref="InlineBytes"/> bytes (all of
    /// them when it is no longer) and is at least as long as the prefix.</summary>
    public bool InlineMatches(ReadOnlySpan<byte> key)
    {
        if (key.Length < Length) return false;
        if (Length == 0) return true;
        if (Load(key, 0, Math.Min(Length, 8)) != _first) return false;
        return Length <= 8 || Load(key, 8, Math.Min(Length - 8, 8)) == _second;
    }

    /// <summary><paramref name="n"/> (1 to 8) bytes from <paramref name="offset"/>, big-endian in the high bytes.</summary>
    private static ulong Load(ReadOnlySpan<byte> key, int offset, int n)
    {
        if (key.Length - offset >= 8)
        {
            var v = BinaryPrimitives.ReadUInt64BigEndian(key[offset..]);
            return n == 8 ? v : v & ~(ulong.MaxValue >> (n * 8));
        }
        ulong r = 0;
        for (var i = 0; i < n; i++) r |= (ulong)key[offset + i] << (56 - 8 * i);
        return r;
    }
}
