using RaftPS.Protocol;

namespace RaftPS.Client;

/// <summary>A conditional write's condition, as the cmdlets state it.</summary>
internal readonly record struct WriteConditionSpec(CompareKind Kind, long Revision = 0, string? Value = null)
{
    public static readonly WriteConditionSpec None = new(CompareKind.CompareNone);
    public static WriteConditionSpec IfRevision(long revision) => new(CompareKind.CompareModRevision, revision);
    public static readonly WriteConditionSpec IfAbsent = new(CompareKind.CompareAbsent);
    public static WriteConditionSpec IfValue(string value) => new(CompareKind.CompareValue, 0, value);
}

/// <summary>How a conditional write came out.</summary>
/// <param name="KeyRevision">Succeeded: the key's new mod revision (a delete: its revision); failed: the key's mod revision then (0: absent).</param>
internal readonly record struct ConditionalOutcome(bool Succeeded, long Index, long KeyRevision, bool Existed);

/// <summary>The coordination calls: conditional writes, leases, the current revision.</summary>
internal static class CoordinationOperations
{
    /// <summary>
    /// A Set (<paramref name="delete"/> false) or Remove under <paramref name="condition"/>, once
    /// committed. A failed condition is an outcome, not an exception; the same client id and
    /// sequence go with every retry, so a retried write answers its first outcome.
    /// </summary>
    public static async Task<ConditionalOutcome> WriteAsync(RaftConnection connection, string operation, bool delete, string key, string value,
        WriteConditionSpec condition, long lease, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation)
    {
        await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        var session = connection.RentSession();
        try
        {
            var request = new WriteRequest
            {
                Op = delete ? WriteOp.WriteDelete : WriteOp.WritePut,
                Key = key,
                Value = delete ? Google.Protobuf.ByteString.Empty : RaftOperations.Encode(value),
                ClientId = session.ClientId,
                Sequence = session.Next(),
                Compare = condition.Kind,
                CompareRevision = condition.Revision,
                CompareValue = condition.Value is null ? Google.Protobuf.ByteString.Empty : RaftOperations.Encode(condition.Value),
                Lease = lease,
            };
            var reply = await RaftCaller.InvokeAsync(connection, operation, key, CallScope.Cluster, request,
                static (c, r, o) => c.WriteAsync(r, o), timeout, progress, cancellation).ConfigureAwait(false);
            return new ConditionalOutcome(reply.Succeeded, reply.Index, reply.KeyRevision, reply.Existed);
        }
        finally
        {
            connection.ReturnSession(session);
        }
    }

    /// <summary>A new lease of <paramref name="ttlSeconds"/>; its id.</summary>
    public static async Task<long> LeaseGrantAsync(RaftConnection connection, string operation, long ttlSeconds, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation)
    {
        var session = connection.RentSession();
        try
        {
            var request = new LeaseGrantRequest { TtlSeconds = ttlSeconds, ClientId = session.ClientId, Sequence = session.Next() };
            var reply = await RaftCaller.InvokeAsync(connection, operation, null, CallScope.Cluster, request,
                static (c, r, o) => c.LeaseGrantAsync(r, o), timeout, progress, cancellation).ConfigureAwait(false);
            return reply.Id;
        }
        finally
        {
            connection.ReturnSession(session);
        }
    }

    /// <summary>Revokes a lease (its keys are deleted); false when it was already gone.</summary>
    public static async Task<bool> LeaseRevokeAsync(RaftConnection connection, string operation, long id, TimeSpan timeout, CancellationToken cancellation)
    {
        var session = connection.RentSession();
        try
        {
            var request = new LeaseRevokeRequest { Id = id, ClientId = session.ClientId, Sequence = session.Next() };
            var reply = await RaftCaller.InvokeAsync(connection, operation, null, CallScope.Cluster, request,
                static (c, r, o) => c.LeaseRevokeAsync(r, o), timeout, null, cancellation).ConfigureAwait(false);
            return reply.Found;
        }
        finally
        {
            connection.ReturnSession(session);
        }
    }

    /// <summary>Renews a lease at the leader: its time to live, or null when the lease is gone.</summary>
    public static async Task<long?> LeaseKeepAliveAsync(RaftConnection connection, long id, TimeSpan timeout, CancellationToken cancellation)
    {
        var reply = await RaftCaller.InvokeAsync(connection, "keep-alive", null, CallScope.Cluster, new LeaseKeepAliveRequest { Id = id },
            static (c, r, o) => c.LeaseKeepAliveAsync(r, o), timeout, null, cancellation).ConfigureAwait(false);
        return reply.Found ? reply.TtlSeconds : null;
    }

    /// <summary>The cluster's current revision, read linearizably (a Range of one key).</summary>
    public static async Task<long> CurrentRevisionAsync(RaftConnection connection, string operation, string prefix, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation)
    {
        var page = await RaftOperations.RangeAsync(connection, prefix, "", 1, timeout, progress, cancellation, operation).ConfigureAwait(false);
        return page.Revision;
    }

    /// <summary>The message of a failed condition, naming the key and where it stands.</summary>
    public static RaftException Conflict(string operation, string key, WriteConditionSpec condition, ConditionalOutcome outcome)
    {
        var now = outcome.KeyRevision == 0 ? "the key does not exist" : $"the key's revision is {outcome.KeyRevision}";
        var message = condition.Kind switch
        {
            CompareKind.CompareModRevision => $"{operation} '{key}': {now}, not {condition.Revision}; nothing was changed.",
            CompareKind.CompareAbsent => $"{operation} '{key}': the key already exists (revision {outcome.KeyRevision}); nothing was changed.",
            _ => outcome.KeyRevision == 0
                ? $"{operation} '{key}': the key does not exist; nothing was changed."
                : $"{operation} '{key}': the key's value is not the one given (its revision is {outcome.KeyRevision}); nothing was changed.",
        };
        return new RaftException(RaftErrorKind.Conflict, message) { Key = key, CurrentRevision = outcome.KeyRevision };
    }
}
