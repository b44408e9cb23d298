namespace RaftPS;

/// <summary>Why a call to the cluster failed, after any retries.</summary>
public enum RaftErrorKind
{
    /// <summary>The server rejected the request's arguments (empty or too long key, value too large).</summary>
    InvalidArgument,
    /// <summary>No node could be reached at all within the time allowed.</summary>
    Unreachable,
    /// <summary>Nodes answered, but none could serve the request (no leader, suspended) in time.</summary>
    Timeout,
    /// <summary>The server failed the call in a way a retry will not fix.</summary>
    ServerError,
    /// <summary>The call named a member that does not exist.</summary>
    NotFound,
    /// <summary>The call would add something that exists (a member id or address).</summary>
    Conflict,
    /// <summary>The cluster refused the call in its current state (a membership change in flight,
    /// a learner not caught up, a change that would lose quorum).</summary>
    Refused,
}

/// <summary>A failed call to the cluster. The cmdlets turn it into an ErrorRecord.</summary>
public sealed class RaftException : Exception
{
    public RaftException(RaftErrorKind kind, string message, Exception? inner = null) : base(message, inner)
    {
        Kind = kind;
    }

    public RaftErrorKind Kind { get; }
}
