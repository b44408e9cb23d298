using System.Diagnostics;
using System.IO;
using System.Net.Http;
using System.Net.Sockets;
using Grpc.Core;
using RaftPS.Protocol;

namespace RaftPS.Client;

/// <summary>How a call may be retried.</summary>
internal enum CallScope
{
    /// <summary>Any member can answer (reads, writes, GetLeader): fail over to the others.</summary>
    Cluster,
    /// <summary>Only the connection's own node can answer (Status, Suspend): retry it alone.</summary>
    Node,
}

/// <summary>
/// Runs one client call with retries: back-off from 50 ms to 1 s until the timeout, following the
/// leader hint of an UNAVAILABLE reply ("raftps-leader" trailer) and moving on to the other known
/// members of the cluster when a node is down, suspended or has no leader. Each member is tried at
/// once in a round; a round in which every one failed ends with the back-off. A node that refuses
/// a call as overloaded (RESOURCE_EXHAUSTED with the grpc-retry-pushback-ms trailer: admission
/// control did nothing with it) is asked again after at least the pause it named, with the same
/// back-off; RESOURCE_EXHAUSTED without it (a request larger than the node accepts) is final.
/// </summary>
internal static class RaftCaller
{
    public const string LeaderTrailer = "raftps-leader";
    public const string RetryPushbackTrailer = "grpc-retry-pushback-ms";
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(1);

    /// <param name="operation">What the call does, for messages (e.g. "Set-RaftValue").</param>
    /// <param name="subject">The key it concerns, quoted after <paramref name="operation"/> in messages; null for none.</param>
    /// <param name="request">Passed to <paramref name="call"/>: a static lambda needs no closure per call.</param>
    public static async Task<TReply> InvokeAsync<TRequest, TReply>(
        RaftConnection connection,
        string operation,
        string? subject,
        CallScope scope,
        TRequest request,
        Func<RaftClient.RaftClientClient, TRequest, CallOptions, AsyncUnaryCall<TReply>> call,
        TimeSpan timeout,
        RetryProgress? progress,
        CancellationToken cancellation)
    {
        // The first attempt allocates nothing of its own beyond the call: the clock is a
        // timestamp, messages are only formatted when something fails, and the set of members
        // tried in a round only exists once one has failed.
        var started = Stopwatch.GetTimestamp();
        var origin = connection.Endpoint;
        var target = origin;
        var backoff = FirstBackoff;
        var reachedServer = false;
        string lastProblem = "no attempt was made";
        var attempt = 0;
        HashSet<RaftEndpoint>? triedThisRound = null;
        var lastOverloaded = false;

        while (true)
        {
            cancellation.ThrowIfCancellationRequested();
            var remaining = timeout - Stopwatch.GetElapsedTime(started);
            if (remaining <= TimeSpan.Zero)
                throw GiveUp(Describe(operation, subject), origin, timeout, reachedServer, lastProblem, lastOverloaded);

            attempt++;
            // One slow node must not eat the whole budget: cap each attempt.
            var attemptBudget = TimeSpan.FromTicks(Math.Min(remaining.Ticks,
                Math.Max(TimeSpan.FromSeconds(2).Ticks, timeout.Ticks / 3)));
            RaftEndpoint? hint = null;
            TimeSpan? pushback = null;
            try
            {
                var client = ChannelCache.Get(target, connection.Security);
                using var pending = call(client, request, new CallOptions(
                    deadline: DateTime.UtcNow + attemptBudget, cancellationToken: cancellation));
                var reply = await pending.ResponseAsync.ConfigureAwait(false);
                if (scope == CallScope.Cluster && !ClusterDirectory.Knows(origin))
                    _ = LearnMembersAsync(target, origin, connection.Security);
                return reply;
            }
            catch (RpcException e) when (cancellation.IsCancellationRequested)
            {
                throw new OperationCanceledException($"{Describe(operation, subject)} was cancelled", e, cancellation);
            }
            catch (RpcException e)
            {
                // TLS, token and role failures are the caller's settings: no retry elsewhere fixes them.
                if (await TlsDiagnosis.ClassifyAsync(e, connection, target, Describe(operation, subject)).ConfigureAwait(false) is { } security)
                    throw security;
                switch (e.StatusCode)
                {
                    case StatusCode.InvalidArgument:
                        throw new RaftException(RaftErrorKind.InvalidArgument, $"{Describe(operation, subject)}: {e.Status.Detail}", e);
                    case StatusCode.NotFound:
                        // NOT_FOUND names a member for the membership calls and a lease for every other call.
                        if (IsMembershipOperation(operation))
                            throw new RaftException(RaftErrorKind.NotFound, $"{Describe(operation, subject)}: {e.Status.Detail}", e);
                        throw new RaftException(RaftErrorKind.LeaseNotFound, $"{Describe(operation, subject)}: {e.Status.Detail}", e) { Key = subject };
                    case StatusCode.ResourceExhausted when IsNoSpace(e.Status.Detail):
                        throw new RaftException(RaftErrorKind.NoSpace, $"{Describe(operation, subject)}: {e.Status.Detail}", e) { Key = subject };
                    case StatusCode.AlreadyExists:
                        throw new RaftException(RaftErrorKind.Exists, $"{Describe(operation, subject)}: {e.Status.Detail}", e);
                    case StatusCode.FailedPrecondition:
                        throw new RaftException(RaftErrorKind.Refused, $"{Describe(operation, subject)}: {e.Status.Detail}", e);
                    case StatusCode.ResourceExhausted when ParsePushback(e.Trailers) is { } wait:
                        // Refused by admission control before anything was done: safe to send again.
                        reachedServer = true;
                        pushback = wait;
                        lastProblem = $"node {target} is overloaded ({Detail(e)})";
                        break;
                    case StatusCode.ResourceExhausted:
                        throw new RaftException(RaftErrorKind.ResourceExhausted, $"{Describe(operation, subject)}: {TooLarge(e, target)}", e);
                    case StatusCode.Unavailable:
                        var transport = e.Status.DebugException is not null;
                        reachedServer |= !transport;
                        hint = ParseLeaderHint(e.Trailers);
                        lastProblem = transport
                            ? $"node {target} is unreachable ({Innermost(e.Status.DebugException!)})"
                            : $"node {target} is unavailable ({Detail(e)})";
                        break;
                    case StatusCode.DeadlineExceeded:
                        lastProblem = $"node {target} did not answer within {attemptBudget.TotalSeconds:0.#} s";
                        break;
                    case StatusCode.Cancelled:
                    case StatusCode.Aborted:
                        reachedServer = true;
                        lastProblem = $"node {target} dropped the call ({Detail(e)})";
                        break;
                    case StatusCode.Internal when e.Status.DebugException is HttpRequestException or IOException:
                        // The connection closed under the call, e.g. the GOAWAY of a node that is
                        // shutting down ("Error starting gRPC call ... The HTTP/2 server closed the
                        // connection"). The request may or may not have reached the node: retry it
                        // elsewhere, as for UNAVAILABLE (a write keeps its client id and sequence, so
                        // it still applies once).
                        reachedServer = true;
                        lastProblem = $"node {target} closed the connection ({Innermost(e.Status.DebugException)})";
                        break;
                    default:
                        throw new RaftException(RaftErrorKind.ServerError,
                            $"{Describe(operation, subject)} failed on node {target}: {e.StatusCode}: {Detail(e)}", e);
                }
            }
            catch (HttpRequestException e)
            {
                if (await TlsDiagnosis.ClassifyAsync(e, connection, target, Describe(operation, subject)).ConfigureAwait(false) is { } security)
                    throw security;
                lastProblem = $"node {target} is unreachable ({Innermost(e)})";
            }

            // Where to try next: the leader the node named, else the next member; an overloaded
            // node is asked again (its followers would forward to it, or are as busy).
            lastOverloaded = pushback is not null;
            triedThisRound ??= new HashSet<RaftEndpoint>();
            triedThisRound.Add(target);
            if (scope == CallScope.Cluster && pushback is null)
            {
                if (hint is { } leader && !leader.Equals(target))
                    target = leader;
                else
                    target = NextMember(origin, target);
            }

            if (progress is not null) progress.Status = $"attempt {attempt}: {lastProblem}; retrying at {target}";
            // A member not yet tried in this round is tried at once; once every one has failed,
            // the round ends with a back-off.
            if (!triedThisRound.Contains(target))
                continue;
            triedThisRound.Clear();

            var jitter = TimeSpan.FromMilliseconds(Random.Shared.Next(0, (int)(backoff.TotalMilliseconds / 2) + 1));
            var pause = backoff + jitter;
            if (pushback is { } asked && asked > pause) pause = asked;
            remaining = timeout - Stopwatch.GetElapsedTime(started);
            if (pause > remaining) pause = remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero;
            await Task.Delay(pause, cancellation).ConfigureAwait(false);
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
        }
    }

    /// <summary>"Set-RaftValue 'key'", or the operation alone when there is no key.</summary>
    /// <summary>The calls whose NOT_FOUND names a member (every other call's names a lease).</summary>
    private static bool IsMembershipOperation(string operation) =>
        operation is "Get-RaftMember" or "Add-RaftNode" or "Remove-RaftNode" or "Move-RaftLeader";

    internal static string Describe(string operation, string? subject) =>
        subject is null ? operation : $"{operation} '{subject}'";

    internal static RaftEndpoint NextMember(RaftEndpoint origin, RaftEndpoint current)
    {
        var candidates = ClusterDirectory.Candidates(origin);
        if (candidates.Length == 1) return candidates[0];
        var index = Array.IndexOf(candidates, current);
        return candidates[(index + 1) % candidates.Length];
    }

    /// <summary>Asks a node that answered for the cluster's members, so later retries know them.</summary>
    internal static async Task LearnMembersAsync(RaftEndpoint target, RaftEndpoint origin, ConnectionSecurity? security)
    {
        try
        {
            var client = ChannelCache.Get(target, security);
            var status = await client.StatusAsync(new StatusRequest(),
                deadline: DateTime.UtcNow.AddSeconds(2)).ResponseAsync.ConfigureAwait(false);
            var members = status.Members.Select(m => new RaftEndpoint(m.Address, m.Port)).ToList();
            if (members.Count > 0 && !members.Contains(origin)) members.Add(origin);
            ClusterDirectory.Record(members);
        }
        catch (Exception)
        {
            // Best effort: a later call learns them.
        }
    }

    /// <summary>The pause an overloaded node asks for (grpc-retry-pushback-ms), or null when it names none
    /// (or a negative one, gRPC's "do not retry").</summary>
    internal static TimeSpan? ParsePushback(Metadata? trailers)
    {
        var text = trailers?.GetValue(RetryPushbackTrailer);
        if (!int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var ms)) return null;
        return TimeSpan.FromMilliseconds(Math.Min(ms, 10_000));
    }

    internal static RaftEndpoint? ParseLeaderHint(Metadata? trailers)
    {
        // "<id> <host>:<port>"
        var text = trailers?.GetValue(LeaderTrailer);
        if (string.IsNullOrWhiteSpace(text)) return null;
        var space = text.IndexOf(' ');
        return RaftEndpoint.TryParse(space >= 0 ? text[(space + 1)..].Trim() : text.Trim());
    }

    private static RaftException GiveUp(string operation, RaftEndpoint origin, TimeSpan timeout, bool reachedServer, string lastProblem, bool overloaded)
    {
        var seconds = timeout.TotalSeconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture);
        if (overloaded)
            return new RaftException(RaftErrorKind.ResourceExhausted,
                $"{operation} did not complete within {seconds} s through {origin}: the cluster stayed overloaded. Last problem: {lastProblem}.");
        return reachedServer
            ? new RaftException(RaftErrorKind.Timeout,
                $"{operation} did not complete within {seconds} s through {origin}: the cluster has no leader that can serve it. Last problem: {lastProblem}.")
            : new RaftException(RaftErrorKind.Unreachable,
                $"{operation} could not reach any node of the cluster through {origin} within {seconds} s. Last problem: {lastProblem}.");
    }

    /// <summary>gRPC's own refusal of a message over the node's size limit says "exceeds the maximum
    /// configured message size": name the option that sets it.</summary>
    internal static string TooLarge(RpcException e, RaftEndpoint target) =>
        e.Status.Detail.Contains("maximum configured message size", StringComparison.OrdinalIgnoreCase)
            ? $"the request is larger than node {target} accepts (its --max-request-bytes): {Detail(e)}"
            : $"node {target} refused it: {Detail(e)}";
    /// <summary>The storage quota's refusal (RESOURCE_EXHAUSTED "NOSPACE: ..."), not an overloaded node's.</summary>
    internal static bool IsNoSpace(string? detail) => detail is not null && detail.StartsWith("NOSPACE", StringComparison.Ordinal);

    private static string Detail(RpcException e) => string.IsNullOrEmpty(e.Status.Detail) ? e.StatusCode.ToString() : e.Status.Detail;

    private static string Innermost(Exception e)
    {
        while (e.InnerException is not null) e = e.InnerException;
        return e is SocketException s ? s.SocketErrorCode.ToString() : e.Message;
    }
}
