using System.Runtime.CompilerServices;
using System.Text;
using Google.Protobuf;
using RaftPS.Protocol;

namespace RaftPS.Client;

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

    /// <summary>Writes a value once committed; returns the log index it was committed at.</summary>
    public static async Task<long> SetAsync(RaftConnection connection, string key, string value, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation)
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

    /// <summary>The value of a key, or null when the key does not exist.</summary>
    public static async Task<RaftValue?> GetAsync(RaftConnection connection, string key, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation)
    {
        await LeaveCallerThread();
        var reply = await RaftCaller.InvokeAsync(connection, "Get-RaftValue", key, CallScope.Cluster, new GetRequest { Key = key },
            static (c, r, o) => c.GetAsync(r, o), timeout, progress, cancellation).ConfigureAwait(false);
        return reply.Found ? new RaftValue(key, Decode(reply.Value)) : null;
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

    /// <summary>One page of the keys under a prefix, after a key (exclusive).</summary>
    public static async Task<(List<RaftValue> Items, bool More)> RangeAsync(RaftConnection connection, string prefix, string startAfter, int limit, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation)
    {
        var request = new RangeRequest { Prefix = prefix, StartAfter = startAfter, Limit = limit };
        var reply = await RaftCaller.InvokeAsync(connection, "Get-RaftValue", prefix + "*", CallScope.Cluster, request,
            static (c, r, o) => c.RangeAsync(r, o), timeout, progress, cancellation).ConfigureAwait(false);
        return (reply.Items.Select(kv => new RaftValue(kv.Key, Decode(kv.Value))).ToList(), reply.More);
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
        return status;
    }

    internal static RaftStatus ToStatus(StatusReply reply, string address, int port) => new()
    {
        Id = reply.Id,
        Address = address,
        Port = port,
        Role = (RaftRole)(int)reply.Role,
        Term = reply.Term,
        Leader = reply.Leader is { } l ? new RaftMember(l.Id, l.Address, l.Port) : null,
        CommitIndex = reply.CommitIndex,
        AppliedIndex = reply.AppliedIndex,
        FirstIndex = reply.FirstIndex,
        LastIndex = reply.LastIndex,
        SnapshotIndex = reply.SnapshotIndex,
        SnapshotTerm = reply.SnapshotTerm,
        LogBytes = reply.LogBytes,
        Members = reply.Members.Select(m => new RaftMember(m.Id, m.Address, m.Port)).ToArray(),
        Peers = reply.Peers.Select(p => new RaftPeerProgress(p.Id, p.MatchIndex, p.NextIndex, p.Reachable)).ToArray(),
    };

    private static string Decode(ByteString bytes) => Utf8.GetString(bytes.Span);
}
