using Microsoft.Extensions.Logging;

namespace RaftServer.Observability;

/// <summary>
/// Warns when a peer's round trip (the leader's heartbeat probes, <see cref="PeerProbe"/>) stays
/// longer than the heartbeat: the timers are then made for a faster network than the cluster runs
/// on, and elections split (several terms in a row, writes paused for seconds; docs/server.md,
/// "Timeouts"). Judged on the shortest of <see cref="Window"/> samples, so a stalled process or a
/// retransmitted packet does not count; said at most once per <see cref="Quiet"/> per peer.
/// Loop thread only.
/// </summary>
public sealed class SlowLinkWarning(int heartbeatMs, ILogger logger, Func<long> nowMs)
{
    public const int Window = 20;
    public static readonly TimeSpan Quiet = TimeSpan.FromMinutes(10);
    private readonly Dictionary<int, (double ShortestMs, int Samples)> _windows = new();
    private readonly Dictionary<int, long> _saidAtMs = new();

    public void RoundTrip(int peer, double ms)
    {
        var (shortest, samples) = _windows.GetValueOrDefault(peer, (double.MaxValue, 0));
        shortest = Math.Min(shortest, ms);
        if (++samples < Window)
        {
            _windows[peer] = (shortest, samples);
            return;
        }
        _windows.Remove(peer);
        if (shortest <= heartbeatMs) return;
        var now = nowMs();
        if (_saidAtMs.TryGetValue(peer, out var said) && now - said < (long)Quiet.TotalMilliseconds) return;
        _saidAtMs[peer] = now;
        logger.LogWarning("The round trip to node {Peer} is {RoundTripMs:0} ms or more, longer than the heartbeat ({HeartbeatMs} ms): " +
            "elections on this link may split and pause writes for seconds. Give every node --heartbeat-ms of about the round trip " +
            "and --election-timeout-ms of about ten times that", peer, shortest, heartbeatMs);
    }
}
