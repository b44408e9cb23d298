using System.Diagnostics;
using System.Net.Sockets;
using RaftServer.Consensus;
using RaftServer.Transport;

namespace RaftServer.Observability;

/// <summary>
/// Times the round trip to each peer from the messages the loop sends and receives: a heartbeat
/// sent to a peer while none is outstanding starts a probe; that peer's next heartbeat response
/// ends it. Every heartbeat period the leader sends one, so each peer is measured about that
/// often. A probe unanswered for <see cref="MaxRoundTrip"/> (a peer down or cut off) is dropped
/// and the next heartbeat starts another, so a peer that comes back is not reported with the time
/// it was away. A follower notes each heartbeat or append it receives (its last contact with a
/// leader). Both sides run on the loop thread only.
/// </summary>
public sealed class PeerProbe(NodeMetrics metrics)
{
    /// <summary>Beyond any election timeout a cluster would run with.</summary>
    private static readonly TimeSpan MaxRoundTrip = TimeSpan.FromSeconds(2);
    private readonly Dictionary<int, long> _outstanding = new();

    public void Sent(IReadOnlyList<Message> messages)
    {
        for (var i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            if (m.Type != MessageType.Heartbeat) continue;
            if (_outstanding.TryGetValue(m.To, out var since) && Stopwatch.GetElapsedTime(since) < MaxRoundTrip) continue;
            _outstanding[m.To] = Stopwatch.GetTimestamp();
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
                    if (_outstanding.Remove(m.From, out var sent))
                        metrics.PeerRoundTrip(m.From, Stopwatch.GetElapsedTime(sent).TotalSeconds);
                    break;
                case MessageType.Heartbeat or MessageType.Append:
                    metrics.LeaderContact();
                    break;
            }
        }
    }

    /// <summary>Leadership lost or the node suspended: probes in flight would time a later answer.</summary>
    public void Reset() => _outstanding.Clear();
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
