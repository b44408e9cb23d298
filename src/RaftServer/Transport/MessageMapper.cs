using System.Runtime.InteropServices;
using Google.Protobuf;
using RaftServer.Consensus;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>Core <see cref="Message"/> &lt;-&gt; wire <see cref="P.RaftMessage"/>, field for field.</summary>
public static class MessageMapper
{
    public static P.RaftMessage ToProto(Message m)
    {
        var p = new P.RaftMessage
        {
            Type = (P.MessageType)((int)m.Type + 1),
            From = m.From,
            To = m.To,
            Term = m.Term,
            LogTerm = m.LogTerm,
            Index = m.Index,
            Commit = m.Commit,
            Reject = m.Reject,
            RejectHint = m.RejectHint,
            HintTerm = m.HintTerm,
            Context = m.Context,
        };
        var entries = m.Entries;
        for (var i = 0; i < entries.Count; i++)
        {
            var e = entries[i];
            p.Entries.Add(new P.LogEntry
            {
                Index = e.Index,
                Term = e.Term,
                Kind = (P.EntryKind)e.Kind,
                // Entries are immutable: the wire message may share their bytes.
                Data = e.Data.Length == 0 ? ByteString.Empty : UnsafeByteOperations.UnsafeWrap(e.Data),
            });
        }
        return p;
    }

    /// <summary>
    /// Terms and indexes a message may carry. No real cluster comes near it (a term a millisecond
    /// for a hundred million years); refusing more means <c>term + 1</c> and <c>index + 1</c> can
    /// never overflow, so one forged frame cannot persist a term after which no election succeeds.
    /// </summary>
    public const long MaxTermOrIndex = 1L << 62;

    /// <summary>Null when the message is not one this version understands or cannot be valid (it
    /// is then dropped): an unknown type or entry kind, a negative (but a refused read index's -1)
    /// or overflowing term or index,
    /// entries that do not follow <c>Index</c> one by one or carry a term above the message's.</summary>
    public static Message? FromProto(P.RaftMessage p)
    {
        var type = (int)p.Type - 1;
        if (type < (int)MessageType.PreVote || type > (int)MessageType.SnapshotResponse) return null;
        // Index -1 is a refused read index (ReadIndexResponse with Reject).
        if (!InRange(p.Term) || !InRange(p.LogTerm) || (p.Index != -1 && !InRange(p.Index)) || !InRange(p.Commit) || !InRange(p.RejectHint) || !InRange(p.HintTerm))
            return null;
        IReadOnlyList<Entry> entries = [];
        if (p.Entries.Count > 0)
        {
            var list = new Entry[p.Entries.Count];
            for (var i = 0; i < list.Length; i++)
            {
                var e = p.Entries[i];
                if (e.Kind is < P.EntryKind.Command or > P.EntryKind.Configuration) return null;
                if (e.Index != p.Index + 1 + i || e.Index < 1 || e.Term < 0 || e.Term > p.Term || (i > 0 && e.Term < list[i - 1].Term)) return null;
                list[i] = new Entry(e.Index, e.Term, (EntryKind)e.Kind, Bytes(e.Data));
            }
            entries = list;
        }
        return new Message
        {
            Type = (MessageType)type,
            From = p.From,
            To = p.To,
            Term = p.Term,
            LogTerm = p.LogTerm,
            Index = p.Index,
            Entries = entries,
            Commit = p.Commit,
            Reject = p.Reject,
            RejectHint = p.RejectHint,
            HintTerm = p.HintTerm,
            Context = p.Context,
        };
    }

    private static bool InRange(long value) => value is >= 0 and <= MaxTermOrIndex;

    /// <summary>The parsed message owns its bytes: take the array without a copy when it is whole.</summary>
    internal static byte[] Bytes(ByteString bs)
    {
        if (bs.Length == 0) return [];
        if (MemoryMarshal.TryGetArray(bs.Memory, out var segment) && segment.Offset == 0 && segment.Count == segment.Array!.Length)
            return segment.Array;
        return bs.ToByteArray();
    }

    /// <summary>Approximate wire size, for splitting batches.</summary>
    public static int EstimateSize(Message m)
    {
        var size = 64;
        var entries = m.Entries;
        for (var i = 0; i < entries.Count; i++) size += 32 + entries[i].Data.Length;
        return size;
    }
}
