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
    Exists,
    /// <summary>The cluster refused the call in its current state (a membership change in flight,
    /// a learner not caught up, a change that would lose quorum).</summary>
    Refused,
    /// <summary>A conditional write's condition did not hold: nothing changed (see CurrentRevision).</summary>
    Conflict,
    /// <summary>The lease named does not exist (it expired or was revoked).</summary>
    LeaseNotFound,
    /// <summary>A watch's revisions are no longer in any node's window of history (see CompactRevision).</summary>
    Compacted,
    /// <summary>A lock's lease was lost (expired or revoked): the lock is not held.</summary>
    LockLost,
    /// <summary>The node serves clients over TLS only and the connection is plain text.</summary>
    TlsRequired,
    /// <summary>The TLS connection failed: a certificate refused on either side, or the node speaks no TLS.</summary>
    TlsFailed,
    /// <summary>The node requires a token and the call had none, or one it does not know.</summary>
    Unauthenticated,
    /// <summary>The call is not allowed: the caller's role does not cover it (read, write, admin), or the
    /// node does not allow it at all (Suspend on a node started without --allow-suspend).</summary>
    PermissionDenied,
    /// <summary>A limit of the node: the request is larger than it accepts, or the node stayed too busy
    /// (too many pending writes or reads) for the whole time allowed.</summary>
    ResourceExhausted,
    /// <summary>The cluster's storage quota is used up (NOSPACE alarm): writes that add data are
    /// refused until keys are deleted; reads and deletes still work.</summary>
    NoSpace,
}

/// <summary>A failed call to the cluster. The cmdlets turn it into an ErrorRecord.</summary>
public sealed class RaftException : Exception
{
    public RaftException(RaftErrorKind kind, string message, Exception? inner = null) : base(message, inner)
    {
        Kind = kind;
    }

    public RaftErrorKind Kind { get; }

    /// <summary>The key the failure concerns (Conflict, LeaseNotFound, NoSpace), else null.</summary>
    public string? Key { get; init; }

    /// <summary>Conflict: the key's mod revision when the condition was checked (0: absent).</summary>
    public long CurrentRevision { get; init; }

    /// <summary>Compacted: the newest revision no longer kept; watch again from a fresh read.</summary>
    public long CompactRevision { get; init; }
}
