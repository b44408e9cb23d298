using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using RaftServer.Cluster;
using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.StateMachine;
using RaftServer.Transport;

namespace RaftServer.Tests.Hosting;

/// <summary>
/// What a <see cref="RaftDriver"/> did to its ports, in order: a line per save ("save sync
/// entries=1..2 term=3 vote=1"), per message sent ("send Append 1->2"), per snapshot install,
/// log reset, pause.
/// </summary>
internal sealed class Journal
{
    public List<string> Lines { get; } = new();

    public void Add(string line) => Lines.Add(line);

    /// <summary>The position of the first line starting with <paramref name="prefix"/>; fails when there is none.</summary>
    public int IndexOf(string prefix)
    {
        var i = Lines.FindIndex(l => l.StartsWith(prefix, StringComparison.Ordinal));
        Assert.True(i >= 0, $"no line starts with '{prefix}' in:\n{string.Join("\n", Lines)}");
        return i;
    }

    public void Clear() => Lines.Clear();

    public override string ToString() => string.Join("\n", Lines);
}

/// <summary>An in-memory log that records each save in the journal (and is "durable" at once).</summary>
internal sealed class FakeLogStore(Journal journal) : ILogStore
{
    public HardState HardState { get; private set; } = HardState.Empty;
    public List<Entry> Entries { get; } = new();
    public long SizeBytes => Entries.Sum(e => e.Data.Length);

    public void Save(HardState? hardState, IReadOnlyList<Entry> entries, bool sync)
    {
        var what = entries.Count > 0 ? $" entries={entries[0].Index}..{entries[^1].Index}" : "";
        if (hardState is { } hs) what += $" term={hs.Term} vote={hs.VotedFor} commit={hs.Commit}";
        journal.Add($"save {(sync ? "sync" : "nosync")}{what}");
        if (entries.Count > 0)
        {
            Entries.RemoveAll(e => e.Index >= entries[0].Index);
            Entries.AddRange(entries);
        }
        if (hardState is { } h) HardState = h;
    }

    public void Reset(long snapshotIndex)
    {
        journal.Add($"reset {snapshotIndex}");
        Entries.Clear();
    }

    public PersistedState Persisted() => new() { HardState = HardState, Entries = Entries.ToArray() };
}

internal sealed class FakeSender(Journal journal) : IMessageSender
{
    public List<Message> Sent { get; } = new();
    public bool Paused { get; private set; }

    public void Send(IReadOnlyList<Message> messages)
    {
        foreach (var m in messages)
        {
            if (m.Type == MessageType.Snapshot) continue;
            journal.Add($"send {m.Type} {m.From}->{m.To}");
            Sent.Add(m);
        }
    }

    public void Pause()
    {
        journal.Add("pause");
        Paused = true;
    }

    public void Resume() => Paused = false;

    /// <summary>Takes (and forgets) the messages sent so far.</summary>
    public List<Message> Take()
    {
        var taken = Sent.ToList();
        Sent.Clear();
        return taken;
    }
}

internal sealed class FakeSockets : IPeerSockets
{
    public int Closed { get; private set; }
    public bool HasConnections => false;
    public void Add(Socket socket, int peerId) => socket.Dispose();
    public void AddTls(TlsPeerConnection connection, int peerId) => connection.Dispose();
    public bool Spin(Func<bool> hasWork) => false;
    public void Sleep(int timeoutMs) { }
    public void Wake() { }
    public void ReadAvailable(Action<List<Message>> deliver) { }
    public void CloseAll() => Closed++;
}

/// <summary>Snapshots whose data is a <see cref="KvImage"/> in memory.</summary>
internal sealed class FakeSnapshots(Journal journal) : ISnapshotPort
{
    public List<object> Dropped { get; } = new();
    private readonly List<object> _received = new();

    public void Restarted(RecoveredNode recovered) { }
    public void AfterApply(RaftNode node, KvStore state, long appliedTerm) { }
    public void Saved(SnapshotSaved saved, RaftNode? node) { }
    public void SaveFailed(SnapshotSaveFailed failed) { }
    public void Received(object data) => _received.Add(data);

    public KvStore Install(SnapshotMetadata meta, object? data)
    {
        journal.Add($"install {meta.Index}");
        return KvStore.FromImage((KvImage)data!);
    }

    public void DropUnclaimed(object? installed)
    {
        Dropped.AddRange(_received.Where(r => !ReferenceEquals(r, installed)));
        _received.Clear();
    }

    public void SendSnapshots(IReadOnlyList<Message> messages)
    {
        foreach (var m in messages)
            if (m.Type == MessageType.Snapshot) journal.Add($"send snapshot {m.From}->{m.To}");
    }

    public void CancelTransfers() => journal.Add("cancel transfers");
}

/// <summary>One node's driver (node 1 of members 1, 2, 3) with every port faked, run by hand turn by turn.</summary>
internal sealed class DriverHarness
{
    public Journal Journal { get; } = new();
    public FakeLogStore Log { get; }
    public FakeSender Sender { get; }
    public FakeSockets Sockets { get; } = new();
    public FakeSnapshots Snapshots { get; }
    public RaftDriver Driver { get; }
    public Membership Membership { get; }
    public long Now;
    public int Reopened;
    public const int Self = 1;

    /// <param name="bootstrap">The cluster's configuration (default: voters 1, 2, 3).</param>
    public DriverHarness(int electionTicks = 10, Configuration? bootstrap = null)
    {
        bootstrap ??= Configuration.FromVoters([1, 2, 3]);
        Log = new FakeLogStore(Journal);
        Sender = new FakeSender(Journal);
        Snapshots = new FakeSnapshots(Journal);
        var membership = Membership = new Membership(Self, new MemberSet(new[] { 1, 2, 3 }.Select(id => new Member(new NodeAddress(id, "127.0.0.1", 5000 + id)))));
        Driver = new RaftDriver(
            () => new RaftOptions { Id = Self, Bootstrap = bootstrap, ElectionTicks = electionTicks, Random = new Random(7), PreVote = false },
            membership, Log, Sender, Sockets, Snapshots,
            () =>
            {
                Reopened++;
                return new RecoveredNode(Log.Persisted(), new KvStore(), null);
            },
            new DriverTimeouts(ReadTicks: 40, WriteTicks: 200), () => Now, NullLogger.Instance);
        Driver.Start(new RecoveredNode(PersistedState.Empty, new KvStore(), null));
    }

    public RaftNode Node => Driver.Node;

    /// <summary>One loop turn after the events: reads started, the turn ended, every Ready handled.</summary>
    public void Turn()
    {
        Driver.StartReads();
        Driver.EndTurn();
        while (Driver.ProcessReady()) { }
    }

    public void Step(Message m)
    {
        Driver.Receive([m]);
        Turn();
    }

    /// <summary>Makes node 1 the leader of a fresh cluster (a vote from 2) and commits its no-op; both peers acknowledge it.</summary>
    public void BecomeLeader()
    {
        for (var i = 0; i < 100 && Node.Role == Role.Follower; i++) Driver.Tick();
        Turn();
        Step(new Message { Type = MessageType.VoteResponse, From = 2, To = Self, Term = Node.Term });
        Assert.Equal(Role.Leader, Node.Role);
        foreach (var peer in new[] { 2, 3 })
            Step(new Message { Type = MessageType.AppendResponse, From = peer, To = Self, Term = Node.Term, Index = Node.LastIndex });
        Assert.Equal(Node.LastIndex, Node.CommitIndex);
        Sender.Take();
        Journal.Clear();
    }

    /// <summary>Makes node 1 a follower of node 2 in term 1, with an empty log.</summary>
    public void FollowNode2()
    {
        Step(new Message { Type = MessageType.Heartbeat, From = 2, To = Self, Term = 1 });
        Assert.Equal(2, Node.LeaderId);
        Sender.Take();
        Journal.Clear();
    }

    public static byte[] Set(string key, string value) =>
        Command.Encode(CommandOp.Set, 0, 0, 0, key, System.Text.Encoding.UTF8.GetBytes(value));
}
