using System.Diagnostics;
using RaftServer.Consensus;
using RaftServer.Observability;

namespace RaftServer.Tests.Observability;

/// <summary>Which heartbeat an answer belongs to, and so the round trip the probe reports.</summary>
public sealed class PeerProbeTests : IDisposable
{
    private readonly NodeMetrics _metrics = new();
    private readonly List<(int Peer, double Ms)> _trips = new();
    private long _ticks = 1;
    private readonly PeerProbe _probe;

    public PeerProbeTests() => _probe = new PeerProbe(_metrics, (peer, ms) => _trips.Add((peer, ms)), () => _ticks);

    public void Dispose() => _metrics.Dispose();

    private void At(double ms) => _ticks = 1 + (long)(ms * Stopwatch.Frequency / 1000);

    private void Heartbeat(double atMs, long context, int to = 2, long term = 3)
    {
        At(atMs);
        _probe.Sent([new Message { Type = MessageType.Heartbeat, From = 1, To = to, Term = term, Context = context }]);
    }

    private void Answer(double atMs, long context, int from = 2, long term = 3)
    {
        At(atMs);
        _probe.Received([new Message { Type = MessageType.HeartbeatResponse, From = from, To = 1, Term = term, Context = context }]);
    }

    private double[] Trips() => _trips.Select(t => Math.Round(t.Ms)).ToArray();

    [Fact]
    public void Under_reads_a_probe_ends_at_its_own_heartbeats_answer_not_the_next_answer()
    {
        // An 80 ms round trip, a heartbeat every 10 ms with a new read round each: from 80 ms on, each
        // answer arrives as the next heartbeat leaves. The probe started at 80 ms must not end at
        // the answer that arrives at 90 ms (the heartbeat of 10 ms): that would be a 10 ms round trip.
        for (var t = 0; t <= 200; t += 10)
        {
            if (t >= 80) Answer(t, context: 100 + (t - 80) / 10);
            Heartbeat(t, context: 100 + t / 10);
        }
        Assert.Equal([80.0, 80], Trips()); // probes sent at 0 and 80 ms; the one of 160 ms is still out
    }

    [Fact]
    public void A_round_trip_longer_than_the_heartbeat_is_timed_whole()
    {
        // Heartbeat rounds every 50 ms, each its own context; answers 80 ms later.
        Heartbeat(0, context: 1);
        Heartbeat(50, context: 2);
        Answer(80, context: 1);
        Heartbeat(100, context: 3);
        Answer(130, context: 2); // an earlier heartbeat's: not the probe's
        Heartbeat(150, context: 4);
        Answer(180, context: 3);
        Assert.Equal([80.0, 80], Trips());
    }

    [Fact]
    public void A_lost_answer_gives_no_time_and_other_terms_and_peers_do_not_count()
    {
        Heartbeat(0, context: 1);
        Heartbeat(10, context: 2);
        Answer(40, context: 0); // an earlier heartbeat's
        Answer(45, context: 1, from: 3); // a peer never sent to
        Answer(48, context: 1, term: 2); // an answer of an earlier term
        Answer(50, context: 2); // the probe's answer went with a lost connection
        Assert.Empty(_trips);
        Heartbeat(60, context: 3);
        Answer(75, context: 3);
        Assert.Equal([(2, 15.0)], _trips.Select(t => (t.Peer, Math.Round(t.Ms))));
        Heartbeat(80, context: 4);
        _probe.Reset();
        Answer(90, context: 4);
        Assert.Single(_trips);
    }

    [Fact]
    public void A_probe_unanswered_for_2_s_is_dropped_and_the_next_heartbeat_starts_another()
    {
        Heartbeat(0, context: 1);
        Heartbeat(1999, context: 2);
        Heartbeat(2001, context: 3);
        Answer(2011, context: 3);
        Assert.Equal([10.0], Trips());
    }
}
