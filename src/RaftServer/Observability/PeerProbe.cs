using System.Diagnostics;
using System.Net.Sockets;
using RaftServer.Consensus;
using RaftServer.Transport;

namespace RaftServer.Observability;

/// <summary>
/// Times the round trip to each peer from the leader's heartbeats and their answers. A heartbeat
/// sent while none is being timed starts a probe; the answer that carries the probe's context ends
/// it. Every heartbeat round has a context of its own (the read round, which the core starts anew
/// for each heartbeat round) and a peer echoes it, so the answer is the probe's own even while
/// several heartbeats are in flight (the leader sends one per turn while reads wait; taking the
/// next answer instead timed an earlier heartbeat's answer, far too short). An answer of a later
/// context means the probe's was lost with a connection: the probe ends without a time. A probe
/// unanswered for <see cref="MaxRoundTrip"/> (a peer down or cut off) is dropped and the next
/// heartbeat starts another, so a peer that comes back is not reported with the time it was away.
/// A follower notes each heartbeat or append it receives (its last contact with a leader). Both
/// sides run on the loop thread only.
/// </summary>
/// <param name="roundTrip">Told each round trip taken (peer, milliseconds), after the metric: <see cref="SlowLinkWarning"/>.</param>
/// <param name="timestamp">The clock (Stopwatch ticks; tests give their own).</param>
public sealed class PeerProbe(NodeMetrics metrics, Action<int, double>? roundTrip = null, Func<long>? timestamp = null)
{
    /// <summary>Beyond any election timeout a cluster would run with.</summary>
    private static readonly TimeSpan MaxRoundTrip = TimeSpan.FromSeconds(2);
    private readonly Func<long> _now = timestamp ?? Stopwatch.GetTimestamp;
    private readonly Dictionary<int, Probe> _probes = new();

    /// <summary>The heartbeat being timed to one peer (SentAt 0: none).</summary>
    private sealed class Probe
    {
        public long Term;
        public long Context;
        public long SentAt;
    }

    public void Sent(IReadOnlyList<Message> messages)
    {
        for (var i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            if (m.Type != MessageType.Heartbeat) continue;
            if (!_probes.TryGetValue(m.To, out var p)) _probes[m.To] = p = new Probe();
            var now = _now();
            if (p.SentAt != 0 && Stopwatch.GetElapsedTime(p.SentAt, now) < MaxRoundTrip) continue;
            (p.Term, p.Context, p.SentAt) = (m.Term, m.Context, now);
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
        if (!_probes.TryGetValue(m.From, out var p) || p.SentAt == 0 || m.Term != p.Term || m.Context < p.Context) return;
        var took = Stopwatch.GetElapsedTime(p.SentAt, _now());
        p.SentAt = 0;
        if (m.Context != p.Context) return; // the probe's answer was lost
        metrics.PeerRoundTrip(m.From, took.TotalSeconds);
        roundTrip?.Invoke(m.From, took.TotalMilliseconds);
    }

    /// <summary>Leadership lost or the node suspended: probes in flight would time a later answer.</summary>
    public void Reset() => _probes.Clear();
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
