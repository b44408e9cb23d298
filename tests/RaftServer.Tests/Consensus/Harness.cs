using RaftServer.Consensus;

namespace RaftServer.Tests.Consensus;

/// <summary>Helpers for tests that drive one node by hand, message by message.</summary>
internal static class Harness
{
    public static RaftNode Node(int id, int[] members, PersistedState? state = null, bool preVote = false,
        bool checkQuorum = false, int electionTicks = 10, int heartbeatTicks = 1, int maxInflight = 64,
        long maxAppendBytes = 1 << 20, int seed = 1) =>
        new(new RaftOptions
        {
            Id = id, Members = members, Random = new Random(seed), PreVote = preVote, CheckQuorum = checkQuorum,
            ElectionTicks = electionTicks, HeartbeatTicks = heartbeatTicks, MaxInflightAppends = maxInflight,
            MaxAppendBytes = maxAppendBytes,
        }, state ?? PersistedState.Empty);

    /// <summary>A log of entries with the given terms, from index 1.</summary>
    public static Entry[] Log(params long[] terms) =>
        terms.Select((term, i) => new Entry(i + 1, term, EntryKind.Command, [(byte)i])).ToArray();

    public static PersistedState State(long term, int votedFor = HardState.NoVote, long commit = 0, params long[] logTerms) =>
        new() { HardState = new HardState(term, votedFor, commit), Entries = Log(logTerms) };

    /// <summary>Takes the node's Ready (as a driver that persisted and sent it) and returns it.</summary>
    public static Ready Take(RaftNode node)
    {
        var ready = node.GetReady();
        node.Advance(ready);
        return ready;
    }

    public static List<Message> Messages(RaftNode node) => Take(node).Messages.ToList();

    public static void Ticks(RaftNode node, int count)
    {
        for (int i = 0; i < count; i++) node.Tick();
    }

    /// <summary>Ticks until the node leaves the follower role (it campaigns).</summary>
    public static void TickUntilCampaign(RaftNode node)
    {
        for (int i = 0; i < 100 && node.Role == Role.Follower; i++) node.Tick();
    }

    /// <summary>Makes a fresh node of <paramref name="members"/> the leader of term 1 (no pre-vote) and
    /// commits its no-op with acknowledgements from every peer. Returns the leader.</summary>
    public static RaftNode Leader(int id, int[] members, PersistedState? state = null, bool checkQuorum = false,
        int maxInflight = 64, long maxAppendBytes = 1 << 20, bool preVote = false)
    {
        var node = Node(id, members, state, preVote: preVote, checkQuorum: checkQuorum, maxInflight: maxInflight, maxAppendBytes: maxAppendBytes);
        TickUntilCampaign(node);
        if (node.Role == Role.PreCandidate)
            foreach (int peer in members.Where(p => p != id))
                node.Step(new Message { Type = MessageType.PreVoteResponse, From = peer, To = id, Term = node.Term + 1 });
        foreach (int peer in members.Where(p => p != id))
            node.Step(new Message { Type = MessageType.VoteResponse, From = peer, To = id, Term = node.Term });
        Assert.Equal(Role.Leader, node.Role);
        foreach (int peer in members.Where(p => p != id))
            node.Step(new Message { Type = MessageType.AppendResponse, From = peer, To = id, Term = node.Term, Index = node.LastIndex });
        Take(node);
        return node;
    }

    public static Message Append(int from, int to, long term, long prevIndex, long prevTerm, long commit, params Entry[] entries) =>
        new() { Type = MessageType.Append, From = from, To = to, Term = term, Index = prevIndex, LogTerm = prevTerm, Commit = commit, Entries = entries };

    public static Entry E(long index, long term, byte data = 0) => new(index, term, EntryKind.Command, [data]);
}
