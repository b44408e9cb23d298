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
    public void With_more_heartbeats_in_flight_than_one_each_answer_is_timed_from_its_own_heartbeat()
    {
        // An 80 ms round trip, heartbeats every 10 ms (one per turn with reads): from 80 ms on, each
        // answer arrives as the next heartbeat leaves; it is the one sent 80 ms before (the next
        // answer after a heartbeat would make that a 0 ms round trip).
        for (var t = 0; t <= 200; t += 10)
        {
            if (t >= 80) Answer(t, context: 100 + (t - 80) / 10);
            Heartbeat(t, context: 100 + t / 10);
        }
        // A time at most every 20 ms: the answers at 80, 100, ..., 200 ms.
        Assert.Equal(Enumerable.Repeat(80.0, 7), Trips());
    }

    [Fact]
    public void Heartbeats_of_one_context_are_answered_in_order()
    {
        Heartbeat(0, context: 5);
        Heartbeat(50, context: 5);
        Answer(90, context: 5);
        Answer(140, context: 5);
        Assert.Equal([90.0, 90], Trips());
    }

    [Fact]
    public void Heartbeats_whose_answers_were_lost_are_skipped_and_other_terms_and_peers_do_not_count()
    {
        Heartbeat(0, context: 1);
        Heartbeat(10, context: 2);
        Heartbeat(20, context: 3);
        Answer(50, context: 3); // the answers to 1 and 2 went with a lost connection
        Answer(60, context: 4, from: 3); // a peer never sent to
        Answer(70, context: 3, term: 2); // an answer of an earlier term
        Assert.Equal([(2, 30.0)], _trips.Select(t => (t.Peer, Math.Round(t.Ms))));
        _probe.Reset();
        Answer(80, context: 3);
        Assert.Single(_trips);
    }
}
