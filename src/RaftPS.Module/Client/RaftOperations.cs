using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using Google.Protobuf;
using Grpc.Core;
using RaftPS.Protocol;

namespace RaftPS.Client;

/// <summary>One item of a SetMany: its failure, or null and the index (= revision) it was committed at.</summary>
internal readonly record struct SetOutcome(Exception? Error, long Index);

/// <summary>The client calls the cmdlets make, in terms of the module's own types.</summary>
internal static class RaftOperations
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>
    /// Awaited first by the calls cmdlets keep many of in flight (Set, Get, Delete): the rest of
    /// the call (request, HTTP/2 headers, sending) runs on the thread pool, so the caller's thread
    /// (PowerShell's one pipeline thread) goes back to binding the next input at once. It ignores
    /// any SynchronizationContext: the pipeline thread blocks on these tasks, and a call posted
    /// back to it would never run.
    /// </summary>
    private static ConfiguredTaskAwaitable LeaveCallerThread() =>
        Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);

    public static async Task<RaftLeader> GetLeaderAsync(RaftConnection connection, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var reply = await RaftCaller.InvokeAsync(connection, "Get-RaftLeader", null, CallScope.Cluster, new GetLeaderRequest(),
                static (c, r, o) => c.GetLeaderAsync(r, o), timeout - clock.Elapsed, progress, cancellation).ConfigureAwait(false);
            if (reply.Leader is { } leader)
                return new RaftLeader(leader.Id, leader.Address, leader.Port, reply.Term);
            // No leader known (a server may answer so instead of UNAVAILABLE): ask again shortly.
            if (clock.Elapsed + TimeSpan.FromMilliseconds(100) >= timeout)
                throw new RaftException(RaftErrorKind.Timeout, $"Get-RaftLeader: no leader was elected within {timeout.TotalSeconds:0.###} s.");
            if (progress is not null) progress.Status = "no leader yet";
            await Task.Delay(100, cancellation).ConfigureAwait(false);
        }
    }

    /// <summary>Writes a value once committed (attached to <paramref name="lease"/> unless 0); returns the
    /// log index it was committed at, which is the key's new revision.</summary>
    public static async Task<long> SetAsync(RaftConnection connection, string key, string value, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation, long lease = 0)
    {
        await LeaveCallerThread();
        var session = connection.RentSession();
        try
        {
            // The same client id and sequence on every retry: the server applies the write once.
            var request = new SetRequest
            {
                Key = key,
                // A fresh array that nothing else holds: wrap it rather than copy it.
                Value = UnsafeByteOperations.UnsafeWrap(Utf8.GetBytes(value)),
                ClientId = session.ClientId,
                Sequence = session.Next(),
                Lease = lease,
            };
            var reply = await RaftCaller.InvokeAsync(connection, "Set-RaftValue", key, CallScope.Cluster, request,
                static (c, r, o) => c.SetAsync(r, o), timeout, progress, cancellation).ConfigureAwait(false);
            return reply.Index;
        }
        finally
        {
            connection.ReturnSession(session);
        }
    }

    /// <summary>
    /// The server remembers the last 64 sequences of each client id (its session window), so a
    /// batch gives each client id at most that many items: a retried batch then still finds every
    /// item it applied before.
    /// </summary>
    internal const int ItemsPerSession = 64;

    /// <summary>Endpoints whose server answered SetMany with Unimplemented: their batches go item by item.</summary>
    private static readonly ConcurrentDictionary<RaftEndpoint, bool> NoSetMany = new();

    /// <summary>
    /// Writes many values with SetMany (one call for the lot; each item its own log entry, client id
    /// and sequence): the outcome of each item, in order (no error = committed, at its index). A failure of the
    /// whole call (no node reachable, timeout) is every item's failure. Items the server answers
    /// Unavailable (leadership lost mid-batch) are sent again, with the same sequences, until the
    /// timeout. One item, or a server without SetMany, goes item by item with Set.
    /// Throws only OperationCanceledException (Ctrl+C).
    /// </summary>
    public static async Task<SetOutcome[]> SetManyAsync(RaftConnection connection, IReadOnlyList<(string Key, string Value)> items, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation, long lease = 0)
    {
        await LeaveCallerThread();
        if (items.Count <= 1 || NoSetMany.ContainsKey(connection.Endpoint))
            return await SetEachAsync(connection, items, Enumerable.Range(0, items.Count).ToList(), new SetOutcome[items.Count], timeout, progress, cancellation, lease).ConfigureAwait(false);

        var sessions = new WriteSession[(items.Count + ItemsPerSession - 1) / ItemsPerSession];
        for (var s = 0; s < sessions.Length; s++) sessions[s] = connection.RentSession();
        try
        {
            var request = new SetManyRequest();
            for (var i = 0; i < items.Count; i++)
            {
                var session = sessions[i / ItemsPerSession];
                request.Items.Add(new SetRequest
                {
                    Key = items[i].Key,
                    Value = UnsafeByteOperations.UnsafeWrap(Utf8.GetBytes(items[i].Value)),
                    ClientId = session.ClientId,
                    Sequence = session.Next(),
                    Lease = lease,
                });
            }

            var errors = new SetOutcome[items.Count];
            var pending = Enumerable.Range(0, items.Count).ToList();
            var started = Stopwatch.GetTimestamp();
            var backoff = TimeSpan.FromMilliseconds(50);
            while (true)
            {
                SetManyReply reply;
                try
                {
                    reply = await RaftCaller.InvokeAsync(connection, "Set-RaftValue", null, CallScope.Cluster, request,
                        static (c, r, o) => c.SetManyAsync(r, o), timeout - Stopwatch.GetElapsedTime(started), progress, cancellation).ConfigureAwait(false);
                }
                catch (RaftException e) when (e.InnerException is RpcException { StatusCode: StatusCode.Unimplemented })
                {
                    // An older server: nothing of this call was applied, so Set with new sessions is safe.
                    NoSetMany[connection.Endpoint] = true;
                    return await SetEachAsync(connection, items, pending, errors, timeout - Stopwatch.GetElapsedTime(started), progress, cancellation, lease).ConfigureAwait(false);
                }
                catch (RaftException e)
                {
                    foreach (var i in pending) errors[i] = new SetOutcome(ForItem(e, items[i].Key), 0);
                    return errors;
                }
                if (reply.Results.Count != pending.Count)
                    throw new InvalidOperationException($"SetMany answered {reply.Results.Count} results for {pending.Count} items");

                var retry = new List<int>();
                for (var j = 0; j < pending.Count; j++)
                {
                    var i = pending[j];
                    var result = reply.Results[j];
                    var key = items[i].Key;
                    errors[i] = new SetOutcome((StatusCode)result.Code switch
                    {
                        StatusCode.OK => null,
                        StatusCode.InvalidArgument => new RaftException(RaftErrorKind.InvalidArgument, $"Set-RaftValue '{key}': {result.Error}"),
                        StatusCode.NotFound => new RaftException(RaftErrorKind.LeaseNotFound, $"Set-RaftValue '{key}': {result.Error}") { Key = key },
                        StatusCode.ResourceExhausted when RaftCaller.IsNoSpace(result.Error) => new RaftException(RaftErrorKind.NoSpace, $"Set-RaftValue '{key}': {result.Error}") { Key = key },
                        StatusCode.Unavailable => new RaftException(RaftErrorKind.Timeout,
                            $"Set-RaftValue '{key}' did not complete within {timeout.TotalSeconds:0.###} s through {connection.Endpoint}: the cluster has no leader that can serve it. Last problem: {result.Error}."),
                        var code => new RaftException(RaftErrorKind.ServerError, $"Set-RaftValue '{key}' failed: {code}: {result.Error}"),
                    }, result.Index);
                    if (result.Code == (int)StatusCode.Unavailable) retry.Add(i);
                }
                // Leadership moved while the batch was being committed: send the items it did not
                // commit again (same client ids and sequences), while time remains.
                if (retry.Count == 0 || Stopwatch.GetElapsedTime(started) + backoff >= timeout)
                    return errors;
                if (progress is not null) progress.Status = $"{retry.Count} items were not committed (leader change); retrying";
                await Task.Delay(backoff, cancellation).ConfigureAwait(false);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(1).Ticks));
                var again = new SetManyRequest();
                foreach (var i in retry) again.Items.Add(request.Items[i]);
                request = again;
                pending = retry;
            }
        }
        finally
        {
            foreach (var session in sessions) connection.ReturnSession(session);
        }
    }

    /// <summary>Set for each of <paramref name="indexes"/>, all in flight together; fills their outcomes.</summary>
    private static async Task<SetOutcome[]> SetEachAsync(RaftConnection connection, IReadOnlyList<(string Key, string Value)> items, List<int> indexes,
        SetOutcome[] errors, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation, long lease)
    {
        var tasks = new Task<long>[indexes.Count];
        for (var j = 0; j < tasks.Length; j++)
            tasks[j] = SetAsync(connection, items[indexes[j]].Key, items[indexes[j]].Value, timeout, progress, cancellation, lease);
        try
        {
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Each task's own outcome is read below.
        }
        cancellation.ThrowIfCancellationRequested();
        for (var j = 0; j < tasks.Length; j++)
            errors[indexes[j]] = tasks[j].IsCompletedSuccessfully
                ? new SetOutcome(null, tasks[j].Result)
                : new SetOutcome(tasks[j].Exception?.InnerException ?? new OperationCanceledException(), 0);
        return errors;
    }

    /// <summary>A failure of a whole batch, worded for one of its items ("Set-RaftValue 'key' ...", as Set says it).</summary>
    private static RaftException ForItem(RaftException e, string key)
    {
        const string operation = "Set-RaftValue";
        var message = e.Message.StartsWith(operation, StringComparison.Ordinal)
            ? $"{operation} '{key}'{e.Message[operation.Length..]}"
            : e.Message;
        return new RaftException(e.Kind, message, e.InnerException);
    }

    /// <summary>The value of a key, or null when the key does not exist.</summary>
    public static async Task<RaftValue?> GetAsync(RaftConnection connection, string key, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation) =>
        (await GetAtAsync(connection, "Get-RaftValue", key, timeout, progress, cancellation).ConfigureAwait(false)).Value;

    /// <summary>The value of a key (null when it does not exist) and the store's revision it was read at.</summary>
    public static async Task<(RaftValue? Value, long Revision)> GetAtAsync(RaftConnection connection, string operation, string key, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation)
    {
        await LeaveCallerThread();
        var reply = await RaftCaller.InvokeAsync(connection, operation, key, CallScope.Cluster, new GetRequest { Key = key },
            static (c, r, o) => c.GetAsync(r, o), timeout, progress, cancellation).ConfigureAwait(false);
        var value = reply.Found ? new RaftValue(key, Decode(reply.Value), reply.ModRevision, reply.CreateRevision, reply.Version, reply.Lease) : null;
        return (value, reply.Revision);
    }

    /// <summary>Deletes a key once committed; false when the key did not exist.</summary>
    public static async Task<bool> DeleteAsync(RaftConnection connection, string key, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation)
    {
        await LeaveCallerThread();
        var session = connection.RentSession();
        try
        {
            var request = new DeleteRequest { Key = key, ClientId = session.ClientId, Sequence = session.Next() };
            var reply = await RaftCaller.InvokeAsync(connection, "Remove-RaftValue", key, CallScope.Cluster, request,
                static (c, r, o) => c.DeleteAsync(r, o), timeout, progress, cancellation).ConfigureAwait(false);
            return reply.Existed;
        }
        finally
        {
            connection.ReturnSession(session);
        }
    }

    /// <summary>One page of the keys under a prefix, after a key (exclusive), and the store's revision when it was read.</summary>
    public static async Task<(List<RaftValue> Items, bool More, long Revision)> RangeAsync(RaftConnection connection, string prefix, string startAfter, int limit, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation, string operation = "Get-RaftValue")
    {
        var request = new RangeRequest { Prefix = prefix, StartAfter = startAfter, Limit = limit };
        var reply = await RaftCaller.InvokeAsync(connection, operation, prefix + "*", CallScope.Cluster, request,
            static (c, r, o) => c.RangeAsync(r, o), timeout, progress, cancellation).ConfigureAwait(false);
        return (reply.Items.Select(kv => new RaftValue(kv.Key, Decode(kv.Value), kv.ModRevision, kv.CreateRevision, kv.Version, kv.Lease)).ToList(), reply.More, reply.Revision);
    }

    public static async Task SuspendAsync(RaftConnection connection, double seconds, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation)
    {
        await RaftCaller.InvokeAsync(connection, "Suspend-RaftNode", null, CallScope.Node, new SuspendRequest { Seconds = seconds },
            static (c, r, o) => c.SuspendAsync(r, o), timeout, progress, cancellation).ConfigureAwait(false);
    }

    public static async Task<RaftStatus> StatusAsync(RaftConnection connection, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation)
    {
        var reply = await RaftCaller.InvokeAsync(connection, "Get-RaftStatus", null, CallScope.Node, new StatusRequest(),
            static (c, r, o) => c.StatusAsync(r, o), timeout, progress, cancellation).ConfigureAwait(false);
        var status = ToStatus(reply, connection.Address, connection.Port);
        ClusterDirectory.Record(status.Members.Select(m => new RaftEndpoint(m.Address, m.Port)).ToList());
        KnownMembers.Record(status.Members);
        return status;
    }

    internal static RaftStatus ToStatus(StatusReply reply, string address, int port) => new()
    {
        Id = reply.Id,
        Address = address,
        Port = port,
        Role = (RaftRole)(int)reply.Role,
        Term = reply.Term,
        Leader = reply.Leader is { } l ? ToMember(l) : null,
        CommitIndex = reply.CommitIndex,
        AppliedIndex = reply.AppliedIndex,
        FirstIndex = reply.FirstIndex,
        LastIndex = reply.LastIndex,
        SnapshotIndex = reply.SnapshotIndex,
        SnapshotTerm = reply.SnapshotTerm,
        LogBytes = reply.LogBytes,
        Members = reply.Members.Select(ToMember).ToArray(),
        Peers = reply.Peers.Select(p => new RaftPeerProgress(p.Id, p.MatchIndex, p.NextIndex, p.Reachable)).ToArray(),
        LiveBytes = reply.LiveBytes,
        QuotaBytes = reply.QuotaBytes,
        NoSpaceAlarm = reply.NospaceAlarm,
    };

    internal static string Decode(ByteString bytes) => Utf8.GetString(bytes.Span);

    internal static ByteString Encode(string text) => UnsafeByteOperations.UnsafeWrap(Utf8.GetBytes(text));
    private static RaftMember ToMember(NodeInfo n) =>
        new(n.Id, n.Address, n.Port, n.Role == MemberRole.Learner ? RaftMemberRole.Learner : RaftMemberRole.Voter);

    // ---- membership ----

    /// <summary>The members as the leader sees them (a follower forwards the call).</summary>
    public static async Task<RaftMember[]> ListMembersAsync(RaftConnection connection, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation)
    {
        var reply = await RaftCaller.InvokeAsync(connection, "Get-RaftMember", null, CallScope.Cluster, new ListMembersRequest(),
            static (c, r, o) => c.ListMembersAsync(r, o), timeout, progress, cancellation).ConfigureAwait(false);
        var members = reply.Members.Select(m => new RaftMember(m.Node.Id, m.Node.Address, m.Node.Port,
            m.Node.Role == MemberRole.Learner ? RaftMemberRole.Learner : RaftMemberRole.Voter)
        {
            IsLeader = m.IsLeader,
            MatchIndex = m.MatchIndex < 0 ? null : m.MatchIndex,
            Reachable = m.Reachable,
            Behind = m.MatchIndex < 0 ? null : Math.Max(0, reply.CommitIndex - m.MatchIndex),
            CaughtUp = m.MatchIndex < 0 ? null : m.CaughtUp,
        }).ToArray();
        ClusterDirectory.Record(members.Select(m => new RaftEndpoint(m.Address, m.Port)).ToList());
        KnownMembers.Record(members);
        return members;
    }

    public static Task<MembersReply> AddMemberAsync(RaftConnection connection, int id, string address, int port, bool learner, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation) =>
        RaftCaller.InvokeAsync(connection, "Add-RaftNode", $"node {id}", CallScope.Cluster,
            new AddMemberRequest { Id = id, Address = address, Port = port, Learner = learner },
            static (c, r, o) => c.AddMemberAsync(r, o), timeout, progress, cancellation);

    public static Task<MembersReply> PromoteMemberAsync(RaftConnection connection, int id, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation) =>
        RaftCaller.InvokeAsync(connection, "Add-RaftNode", $"node {id}", CallScope.Cluster, new PromoteMemberRequest { Id = id },
            static (c, r, o) => c.PromoteMemberAsync(r, o), timeout, progress, cancellation);

    public static Task<MembersReply> RemoveMemberAsync(RaftConnection connection, int id, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation) =>
        RaftCaller.InvokeAsync(connection, "Remove-RaftNode", $"node {id}", CallScope.Cluster, new RemoveMemberRequest { Id = id },
            static (c, r, o) => c.RemoveMemberAsync(r, o), timeout, progress, cancellation);

    /// <summary>Hands leadership to <paramref name="target"/> (null: the most up-to-date voter); returns the new leader.</summary>
    public static async Task<RaftLeader> TransferLeadershipAsync(RaftConnection connection, int? target, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation)
    {
        var request = new TransferLeadershipRequest();
        if (target is { } t) request.Target = t;
        var reply = await RaftCaller.InvokeAsync(connection, "Move-RaftLeader", target is null ? null : $"node {target}", CallScope.Cluster, request,
            static (c, r, o) => c.TransferLeadershipAsync(r, o), timeout, progress, cancellation).ConfigureAwait(false);
        return reply.Leader is { } leader
            ? new RaftLeader(leader.Id, leader.Address, leader.Port, reply.Term)
            : throw new RaftException(RaftErrorKind.ServerError, "Move-RaftLeader: the server did not name the new leader");
    }

    /// <summary>Ends the connected node's suspension.</summary>
    public static async Task ResumeAsync(RaftConnection connection, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation)
    {
        await RaftCaller.InvokeAsync(connection, "Resume-RaftNode", null, CallScope.Node, new ResumeRequest(),
            static (c, r, o) => c.ResumeAsync(r, o), timeout, progress, cancellation).ConfigureAwait(false);
    }
}
