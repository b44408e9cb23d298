using RaftServer.Observability;
using RaftServer.Tests.Storage;

namespace RaftServer.Tests.Observability;

public sealed class SlowLinkWarningTests
{
    private long _nowMs;
    private readonly ListLogger _log = new();
    private SlowLinkWarning Warning() => new(50, _log, () => _nowMs);

    private static void Feed(SlowLinkWarning warning, int peer, params double[] roundTripsMs)
    {
        foreach (var ms in roundTripsMs) warning.RoundTrip(peer, ms);
    }

    private static double[] Window(double ms) => Enumerable.Repeat(ms, SlowLinkWarning.Window).ToArray();

    [Fact]
    public void A_window_of_round_trips_all_longer_than_the_heartbeat_is_a_warning_naming_the_peer_and_the_shortest()
    {
        var warning = Warning();
        var trips = Window(90);
        trips[7] = 81;
        Feed(warning, 2, trips[..^1]);
        Assert.Empty(_log.Lines); // not a whole window yet
        Feed(warning, 2, trips[^1]);
        var line = Assert.Single(_log.Lines);
        Assert.StartsWith("Warning:The round trip to node 2 is 81 ms or more, longer than the heartbeat (50 ms)", line);
        Assert.Contains("--heartbeat-ms", line);
    }

    [Fact]
    public void One_quick_round_trip_in_the_window_means_the_slow_ones_were_stalls_not_the_link()
    {
        var warning = Warning();
        var trips = Window(300);
        trips[3] = 2;
        Feed(warning, 1, trips);
        Feed(warning, 3, Window(50)); // at the heartbeat is not longer than it
        Assert.Empty(_log.Lines);
    }

    [Fact]
    public void A_slow_link_is_said_once_per_quiet_period_per_peer()
    {
        var warning = Warning();
        Feed(warning, 1, Window(90));
        Feed(warning, 2, Window(90));
        _nowMs += (long)SlowLinkWarning.Quiet.TotalMilliseconds - 1;
        Feed(warning, 1, Window(90));
        Assert.Equal(2, _log.Lines.Count);
        _nowMs += 1;
        Feed(warning, 1, Window(90));
        Assert.Equal(3, _log.Lines.Count);
    }
}
