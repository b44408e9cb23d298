using Google.Protobuf;
using RaftServer.Consensus;
using RaftServer.Transport;
using P = RaftPS.Protocol;

namespace RaftServer.Tests.Transport;

public sealed class MessageMapperTests
{
    [Fact]
    public void Every_message_type_and_field_survives_the_wire()
    {
        foreach (var type in Enum.GetValues<MessageType>())
        {
            var m = new Message
            {
                Type = type, From = 1, To = 2, Term = 3, LogTerm = 4, Index = 5, Commit = 6, Reject = true,
                RejectHint = 7, HintTerm = 8, Context = 9,
                Entries = [new Entry(6, 3, EntryKind.Command, [1, 2, 3]), Entry.NoOp(7, 3), new Entry(8, 3, EntryKind.Configuration, [4])],
            };
            var wire = P.RaftMessage.Parser.ParseFrom(MessageMapper.ToProto(m).ToByteArray());
            var back = MessageMapper.FromProto(wire)!;
            Assert.Equal(m with { Entries = [] }, back with { Entries = [] });
            Assert.Equal(m.Entries.Count, back.Entries.Count);
            for (var i = 0; i < m.Entries.Count; i++)
            {
                Assert.Equal((m.Entries[i].Index, m.Entries[i].Term, m.Entries[i].Kind), (back.Entries[i].Index, back.Entries[i].Term, back.Entries[i].Kind));
                Assert.Equal(m.Entries[i].Data, back.Entries[i].Data);
            }
        }
        Assert.Equal(P.MessageType.PreVote, MessageMapper.ToProto(new Message { Type = MessageType.PreVote, From = 0, To = 1 }).Type);
        Assert.Equal(P.MessageType.SnapshotResponse, MessageMapper.ToProto(new Message { Type = MessageType.SnapshotResponse, From = 0, To = 1 }).Type);
    }

    [Fact]
    public void Unknown_types_and_entry_kinds_are_dropped()
    {
        Assert.Null(MessageMapper.FromProto(new P.RaftMessage { Type = P.MessageType.Unspecified }));
        Assert.Null(MessageMapper.FromProto(new P.RaftMessage { Type = (P.MessageType)99 }));
        var bad = new P.RaftMessage { Type = P.MessageType.Append };
        bad.Entries.Add(new P.LogEntry { Index = 1, Term = 1, Kind = (P.EntryKind)7 });
        Assert.Null(MessageMapper.FromProto(bad));
    }

    [Fact]
    public void Parsed_entry_bytes_are_taken_without_a_copy()
    {
        var parsed = P.LogEntry.Parser.ParseFrom(new P.LogEntry { Data = ByteString.CopyFrom(1, 2, 3) }.ToByteArray());
        var a = MessageMapper.Bytes(parsed.Data);
        var b = MessageMapper.Bytes(parsed.Data);
        Assert.Same(a, b);
        Assert.Equal([1, 2, 3], a);
        Assert.Empty(MessageMapper.Bytes(ByteString.Empty));
    }
}
