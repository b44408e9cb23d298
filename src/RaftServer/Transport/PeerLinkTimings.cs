namespace RaftServer.Transport;

/// <summary>
/// How fast a peer link notices that its connection went silent, and how often it tries again
/// (docs/design.md, "The peer transport"). All follow from the node's timers: a link whose round
/// trip is longer than an election timeout cannot keep a leader anyway.
/// </summary>
/// <param name="AckTimeout">A ping on the link unanswered for this long means the connection is dead
/// (packets vanish: a partition, a host cut off): it is closed and reopened, instead of waiting for
/// the kernel's retransmissions, whose back-off grows to seconds. Two election timeouts: longer than
/// a round trip that needs one TCP retransmission (at least 200 ms) on a lossy link, so loss alone
/// does not tear links down.</param>
/// <param name="ConnectTimeout">A connection attempt unanswered for this long is abandoned and the next
/// one starts at once: the kernel would resend its SYN only after 1 s, then 3 s. One election timeout,
/// so after a partition heals the link is back within about that.</param>
/// <param name="PingInterval">At most one ping per this interval (one heartbeat) rides on the link's
/// traffic; the peer answers each on the same connection.</param>
public sealed record PeerLinkTimings(TimeSpan AckTimeout, TimeSpan ConnectTimeout, TimeSpan PingInterval)
{
    public static PeerLinkTimings For(int heartbeatMs, int electionTimeoutMs) => new(
        TimeSpan.FromMilliseconds(Math.Max(2 * electionTimeoutMs, 100)),
        TimeSpan.FromMilliseconds(Math.Max(electionTimeoutMs, 50)),
        TimeSpan.FromMilliseconds(Math.Max(heartbeatMs, 10)));

    /// <summary>A link with nothing to send for this long sends a ping anyway (10 pings' worth: 0.5 s at
    /// the default heartbeat): an idle link is checked too, and is not taken for an idle connection
    /// by its peer (<see cref="InboundIdleTimeout"/>).</summary>
    public TimeSpan KeepAliveInterval => PingInterval * 10;

    /// <summary>An inbound peer connection on which nothing arrived (no frame, no ping) for this long
    /// is closed by the receiving node: ten keep-alive intervals (5 s at the default heartbeat), so
    /// nodes whose heartbeats differ up to tenfold still keep their links.</summary>
    public TimeSpan InboundIdleTimeout => KeepAliveInterval * 10;

    /// <summary>The least time a node's TCP connections wait before sending a lost segment again
    /// (<see cref="TcpRetransmitFloor"/>): one heartbeat, at least 10 ms, at most the kernel's own 200 ms.
    /// A loss then costs about a heartbeat, not most of an election timeout.</summary>
    public TimeSpan RetransmitFloor => TimeSpan.FromMilliseconds(Math.Clamp(PingInterval.TotalMilliseconds, 10, 200));

    /// <summary>The first wait before connecting again after an attempt failed; it doubles with each
    /// failure up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan MinBackoff { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>The longest wait between attempts, and the least time between two bursts of quick
    /// retries after a lost connection.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>The timings of the default timers (50 ms heartbeat, 250 ms election timeout).</summary>
    public static PeerLinkTimings Default { get; } = For(50, 250);
}
