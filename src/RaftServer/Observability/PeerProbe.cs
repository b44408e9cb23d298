using System.Diagnostics;
using System.Net.Sockets;
using RaftServer.Consensus;
using RaftServer.Transport;

namespace RaftServer.Observability;

/// <summary>
/// Times the round trip to each peer from the leader's heartbeats and their answers. A peer answers
/// every heartbeat, in order, with the heartbeat's context (its read round, which never decreases),
/// so each answer is matched to the oldest unanswered heartbeat of the same context: the leader
/// sends more heartbeats than one per period (one per turn with reads waiting), and with a round
/// trip longer than the gap between two heartbeats the next answer is an earlier heartbeat's.
/// Heartbeats of an older context than an answer were answered on a connection that was lost and
/// are forgotten; so are heartbeats of an earlier term. At most <see cref="Tracked"/> heartbeats per
/// peer are remembered (the oldest go first). A time is taken at most every <see cref="SampleEvery"/>
/// per peer. A follower notes each heartbeat or append it receives (its last contact with a
/// leader). Both sides run on the loop thread only.
/// </summary>
/// <param name="roundTrip">Told each round trip taken (peer, milliseconds), after the metric: <see cref="SlowLinkWarning"/>.</param>
/// <param name="timestamp">The clock (Stopwatch ticks; tests give their own).</param>
public sealed class PeerProbe(NodeMetrics metrics, Action<int, double>? roundTrip = null, Func<long>? timestamp = null)
{
    private readonly Func<long> _now = timestamp ?? Stopwatch.GetTimestamp;
    private const int Tracked = 256;
    private static readonly long SampleEvery = Stopwatch.Frequency / 50; // 20 ms
    private readonly Dictionary<int, Heartbeats> _peers = new();

    /// <summary>One peer's unanswered heartbeats of one term: context and when each was sent.</summary>
    private sealed class Heartbeats(long term)
    {
        public readonly long Term = term;
        public readonly Queue<(long Context, long SentAt)> Unanswered = new();
        public long LastSampleAt;
    }

    public void Sent(IReadOnlyList<Message> messages)
    {
        for (var i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            if (m.Type != MessageType.Heartbeat) continue;
            if (!_peers.TryGetValue(m.To, out var h) || h.Term != m.Term) _peers[m.To] = h = new Heartbeats(m.Term);
            if (h.Unanswered.Count == Tracked) h.Unanswered.Dequeue();
            h.Unanswered.Enqueue((m.Context, _now()));
        }
    }

    public void Received(List<Message> messages)
    {
        for (var i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            switch (m.Type)
            {
                case MessageType.HeartbeatResponse:
                    Answered(m);
                    break;
                case MessageType.Heartbeat or MessageType.Append:
                    metrics.LeaderContact();
                    break;
            }
        }
    }

    private void Answered(Message m)
    {
        if (!_peers.TryGetValue(m.From, out var h) || h.Term != m.Term) return;
        var unanswered = h.Unanswered;
        while (unanswered.TryPeek(out var older) && older.Context < m.Context) unanswered.Dequeue();
        if (!unanswered.TryPeek(out var sent) || sent.Context != m.Context) return;
        unanswered.Dequeue();
        var now = _now();
        if (h.LastSampleAt != 0 && now - h.LastSampleAt < SampleEvery) return;
        h.LastSampleAt = now;
        var took = Stopwatch.GetElapsedTime(sent.SentAt, now);
        metrics.PeerRoundTrip(m.From, took.TotalSeconds);
        roundTrip?.Invoke(m.From, took.TotalMilliseconds);
    }

    /// <summary>Leadership lost or the node suspended: heartbeats in flight would time a later answer.</summary>
    public void Reset() => _peers.Clear();
}

/// <summary>The driver's sender port, showing each batch to the <see cref="PeerProbe"/> first.</summary>
public sealed class ProbedSender(IMessageSender inner, PeerProbe probe) : IMessageSender
{
    public void Send(IReadOnlyList<Message> messages)
    {
        probe.Sent(messages);
        inner.Send(messages);
    }

    public void Pause()
    {
        probe.Reset();
        inner.Pause();
    }

    public void Resume() => inner.Resume();
}

/// <summary>The loop's peer sockets, showing each received batch to the <see cref="PeerProbe"/> before the driver steps it.</summary>
public sealed class ProbedSockets(IPeerSockets inner, PeerProbe probe) : IPeerSockets
{
    private Action<List<Message>>? _deliver;
    private Action<List<Message>>? _wrapped;

    public bool HasConnections => inner.HasConnections;
    public void Add(Socket socket, int peerId) => inner.Add(socket, peerId);
    public void AddTls(TlsPeerConnection connection, int peerId) => inner.AddTls(connection, peerId);
    public bool Spin(Func<bool> hasWork) => inner.Spin(hasWork);
    public void Sleep(int timeoutMs) => inner.Sleep(timeoutMs);
    public void Wake() => inner.Wake();
    public void CloseAll() => inner.CloseAll();

    public void ReadAvailable(Action<List<Message>> deliver)
    {
        // The loop passes the same delegate every turn: wrap it once.
        if (!ReferenceEquals(deliver, _deliver))
        {
            _deliver = deliver;
            _wrapped = messages =>
            {
                probe.Received(messages);
                deliver(messages);
            };
        }
        inner.ReadAvailable(_wrapped!);
    }
}
