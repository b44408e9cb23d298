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

    [Theory]
    [InlineData(long.MaxValue, 0, 0)]
    [InlineData(MessageMapper.MaxTermOrIndex + 1, 0, 0)]
    [InlineData(-1, 0, 0)]
    [InlineData(1, long.MaxValue, 0)]
    [InlineData(1, 0, -5)]
    [InlineData(1, -2, 0)]
    public void Terms_and_indexes_that_could_overflow_or_are_negative_are_dropped(long term, long index, long commit)
    {
        foreach (var type in new[] { P.MessageType.Append, P.MessageType.Vote, P.MessageType.Heartbeat, P.MessageType.TimeoutNow })
            Assert.Null(MessageMapper.FromProto(new P.RaftMessage { Type = type, From = 1, To = 2, Term = term, Index = index, Commit = commit }));
        Assert.NotNull(MessageMapper.FromProto(new P.RaftMessage { Type = P.MessageType.Vote, From = 1, To = 2, Term = MessageMapper.MaxTermOrIndex, Index = MessageMapper.MaxTermOrIndex }));
    }

    [Fact]
    public void Every_message_the_core_sends_passes_the_checks_a_refused_read_index_included()
    {
        // The core answers a read index it cannot serve with Index = -1: dropping that left the
        // asking follower's reads waiting out their timeout.
        var refused = new Message { Type = MessageType.ReadIndexResponse, From = 1, To = 2, Term = 3, Context = 7, Index = -1, Reject = true };
        Assert.Equal(refused, MessageMapper.FromProto(MessageMapper.ToProto(refused)));
    }

    [Fact]
    public void Entries_that_do_not_follow_the_index_or_carry_a_later_term_than_the_message_are_dropped()
    {
        P.RaftMessage Append(long prev, params (long Index, long Term)[] entries)
        {
            var p = new P.RaftMessage { Type = P.MessageType.Append, From = 1, To = 2, Term = 5, Index = prev, LogTerm = 4 };
            foreach (var (index, term) in entries) p.Entries.Add(new P.LogEntry { Index = index, Term = term, Kind = P.EntryKind.Command });
            return p;
        }
        Assert.NotNull(MessageMapper.FromProto(Append(10, (11, 4), (12, 5))));
        Assert.Null(MessageMapper.FromProto(Append(10, (12, 5))));            // a gap after the previous index
        Assert.Null(MessageMapper.FromProto(Append(10, (11, 5), (11, 5))));   // a repeated index
        Assert.Null(MessageMapper.FromProto(Append(10, (11, 6))));            // a term the sender is not in yet
        Assert.Null(MessageMapper.FromProto(Append(10, (11, 5), (12, 4))));   // terms going back
    }
}
