using System.Collections.Immutable;

namespace RaftServer.StateMachine;

/// <summary>One remembered write of a session: the sequence number and the answer it got.</summary>
public readonly record struct RememberedWrite(ulong Sequence, WriteResult Result);

/// <summary>
/// A session as captured: its remembered writes oldest first (the order in which they leave the
/// window), the highest sequence that already left it, and when it was last used (log time).
/// </summary>
public sealed record SessionImage(ulong ClientId, long LastUsed, ulong MaxEvicted, ImmutableArray<RememberedWrite> Writes);

/// <summary>
/// The exact state of a <see cref="SessionTable"/>: log time and every session, least recently
/// used first. Restoring it gives a table that answers Check/Record/AdvanceTime exactly as the
/// original would (its Ttl and MaxSessions come from configuration, not from the image).
/// </summary>
public sealed record SessionTableImage(long Now, ImmutableArray<SessionImage> Sessions)
{
    public static readonly SessionTableImage Empty = new(0, []);
}
