using System.Management.Automation;

namespace RaftPS.Cmdlets;

/// <summary>The module's ErrorRecords: one stable error id per failure path.</summary>
internal static class RaftErrors
{
    public const string NotConnected = "RaftNotConnected";
    public const string KeyNotFound = "RaftKeyNotFound";
    public const string InvalidArgument = "RaftInvalidArgument";
    public const string Timeout = "RaftTimeout";
    public const string Unreachable = "RaftNodeUnreachable";
    public const string ServerError = "RaftServerError";
    public const string MemberNotFound = "RaftMemberNotFound";
    public const string MemberExists = "RaftMemberExists";
    public const string Refused = "RaftRefused";
    public const string Conflict = "RaftConflict";
    public const string LeaseNotFound = "RaftLeaseNotFound";
    public const string Compacted = "RaftWatchCompacted";
    public const string LockLost = "RaftLockLost";
    public const string TlsRequired = "RaftTlsRequired";
    public const string TlsFailed = "RaftTlsFailed";
    public const string Unauthenticated = "RaftUnauthenticated";
    public const string PermissionDenied = "RaftPermissionDenied";
    public const string ResourceExhausted = "RaftResourceExhausted";
    public const string NoSpace = "RaftNoSpace";

    public static ErrorRecord NotConnectedRecord() => new(
        new InvalidOperationException("There is no current RaftPS connection. Run Connect-RaftNode <address> <port> first, or pass -Connection."),
        NotConnected, ErrorCategory.ConnectionError, null)
    {
        ErrorDetails = new ErrorDetails("There is no current RaftPS connection. Run Connect-RaftNode <address> <port> first, or pass -Connection.")
        {
            RecommendedAction = "Run Connect-RaftNode <address> <port>, or pass -Connection.",
        },
    };

    public static ErrorRecord KeyNotFoundRecord(string key) => new(
        new ItemNotFoundException($"Cannot find a value with the key '{key}'."),
        KeyNotFound, ErrorCategory.ObjectNotFound, key);

    /// <summary>
    /// A conditional write whose condition did not hold: RaftConflict, ResourceExists when the key
    /// was to be absent, InvalidOperation otherwise; the target is the key, the exception carries
    /// its current revision (Exception.CurrentRevision).
    /// </summary>
    public static ErrorRecord ConflictRecord(RaftException conflict, bool ifAbsent) => new(
        conflict, Conflict, ifAbsent ? ErrorCategory.ResourceExists : ErrorCategory.InvalidOperation, conflict.Key)
    {
        ErrorDetails = new ErrorDetails(conflict.Message)
        {
            RecommendedAction = "Read the key again (Get-RaftValue) and retry with its current Revision.",
        },
    };

    /// <summary>A write refused by the storage quota: RaftNoSpace, QuotaExceeded, the key as target.</summary>
    private static ErrorRecord NoSpaceRecord(RaftException e, object? target) => new(e, NoSpace, ErrorCategory.QuotaExceeded, e.Key ?? target)
    {
        ErrorDetails = new ErrorDetails(e.Message)
        {
            RecommendedAction = "Delete keys (Remove-RaftValue) until the cluster is under 90% of its quota, or restart the nodes with a larger --quota-bytes. Reads and deletes still work.",
        },
    };

    /// <summary>An ErrorRecord for a failed call: the category follows the kind of failure.</summary>
    public static ErrorRecord FromException(Exception exception, object? target)
    {
        if (exception is AggregateException { InnerExceptions.Count: 1 } aggregate)
            exception = aggregate.InnerExceptions[0];
        return exception switch
        {
            RaftException { Kind: RaftErrorKind.InvalidArgument } e => new ErrorRecord(e, InvalidArgument, ErrorCategory.InvalidArgument, target),
            RaftException { Kind: RaftErrorKind.Timeout } e => new ErrorRecord(e, Timeout, ErrorCategory.OperationTimeout, target),
            RaftException { Kind: RaftErrorKind.Unreachable } e => new ErrorRecord(e, Unreachable, ErrorCategory.ConnectionError, target),
            RaftException { Kind: RaftErrorKind.NotFound } e => new ErrorRecord(e, MemberNotFound, ErrorCategory.ObjectNotFound, target),
            RaftException { Kind: RaftErrorKind.Exists } e => new ErrorRecord(e, MemberExists, ErrorCategory.ResourceExists, target),
            RaftException { Kind: RaftErrorKind.Refused } e => new ErrorRecord(e, Refused, ErrorCategory.InvalidOperation, target),
            RaftException { Kind: RaftErrorKind.Conflict } e => new ErrorRecord(e, Conflict, ErrorCategory.InvalidOperation, target),
            RaftException { Kind: RaftErrorKind.LeaseNotFound } e => new ErrorRecord(e, LeaseNotFound, ErrorCategory.ObjectNotFound, target),
            RaftException { Kind: RaftErrorKind.Compacted } e => new ErrorRecord(e, Compacted, ErrorCategory.InvalidOperation, target),
            RaftException { Kind: RaftErrorKind.LockLost } e => new ErrorRecord(e, LockLost, ErrorCategory.InvalidOperation, target),
            RaftException { Kind: RaftErrorKind.TlsRequired } e => new ErrorRecord(e, TlsRequired, ErrorCategory.SecurityError, target),
            RaftException { Kind: RaftErrorKind.TlsFailed } e => new ErrorRecord(e, TlsFailed, ErrorCategory.SecurityError, target),
            RaftException { Kind: RaftErrorKind.Unauthenticated } e => new ErrorRecord(e, Unauthenticated, ErrorCategory.AuthenticationError, target),
            RaftException { Kind: RaftErrorKind.PermissionDenied } e => new ErrorRecord(e, PermissionDenied, ErrorCategory.PermissionDenied, target),
            RaftException { Kind: RaftErrorKind.ResourceExhausted } e => new ErrorRecord(e, ResourceExhausted, ErrorCategory.LimitsExceeded, target),
            RaftException { Kind: RaftErrorKind.NoSpace } e => NoSpaceRecord(e, target),
            RaftException e => new ErrorRecord(e, ServerError, ErrorCategory.InvalidOperation, target),
            _ => new ErrorRecord(exception, ServerError, ErrorCategory.NotSpecified, target),
        };
    }
}
