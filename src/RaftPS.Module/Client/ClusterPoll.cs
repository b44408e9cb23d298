using Grpc.Core;
using RaftPS.Protocol;

namespace RaftPS.Client;

/// <summary>
/// One look at every member of a cluster: each member's Status call, all at once, each a single
/// attempt with its own deadline (a member that is down or suspended costs at most that long and
/// does not hold up the others' rows). The members come from the replies (any member that
/// answers lists the configuration) and are remembered between polls, so a live view goes on
/// showing a member whose process is gone.
/// </summary>
internal sealed class ClusterPoll
{
    private List<RaftEndpoint> _members;
    private Dictionary<RaftEndpoint, int> _ids = new();

    /// <summary>Starts from the members this process already knows of the connection's cluster (else the node alone).</summary>
    public ClusterPoll(RaftConnection connection)
    {
        _members = [.. ClusterDirectory.Candidates(connection.Endpoint)];
        _security = connection.Security;
    }

    private readonly ConnectionSecurity? _security;

    public async Task<RaftNodeStatus[]> PollAsync(TimeSpan perNode, CancellationToken cancellation)
    {
        var endpoints = _members.ToArray();
        var replies = await Task.WhenAll(endpoints.Select(e => AskAsync(e, _security, perNode, cancellation))).ConfigureAwait(false);
        if (endpoints.Length == 1 && replies[0].Reply is { } first)
        {
            // The first poll knew only the connected node: ask the others now, in the same poll.
            Learn(first);
            var others = _members.Where(m => !m.Equals(endpoints[0])).ToArray();
            var rest = await Task.WhenAll(others.Select(e => AskAsync(e, _security, perNode, cancellation))).ConfigureAwait(false);
            endpoints = [endpoints[0], .. others];
            replies = [replies[0], .. rest];
        }
        // The newest configuration any member reports (the highest configuration index).
        var newest = replies.Where(r => r.Reply is not null).Select(r => r.Reply!).MaxBy(r => r.ConfigurationIndex);
        if (newest is not null) Learn(newest);
        return Rows(endpoints, replies);
    }

    private void Learn(StatusReply reply)
    {
        if (reply.Members.Count == 0) return;
        _members = reply.Members.Select(m => new RaftEndpoint(m.Address, m.Port)).ToList();
        _ids = reply.Members.ToDictionary(m => new RaftEndpoint(m.Address, m.Port), m => m.Id);
        ClusterDirectory.Record(_members);
    }

    private static async Task<(StatusReply? Reply, string? Error, bool Suspended)> AskAsync(RaftEndpoint endpoint, ConnectionSecurity? security, TimeSpan timeout, CancellationToken cancellation)
    {
        try
        {
            var reply = await ChannelCache.Get(endpoint, security).StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow + timeout, cancellationToken: cancellation).ConfigureAwait(false);
            return (reply, null, false);
        }
        catch (RpcException e) when (e.StatusCode != StatusCode.Cancelled || !cancellation.IsCancellationRequested)
        {
            var suspended = e.StatusCode == StatusCode.Unavailable && e.Status.Detail.Contains("suspended", StringComparison.Ordinal);
            var error = e.StatusCode switch
            {
                StatusCode.DeadlineExceeded => $"no answer within {timeout.TotalSeconds:0.#} s",
                StatusCode.Unavailable when !suspended => "unreachable",
                _ => e.Status.Detail,
            };
            return (null, error, suspended);
        }
    }

    private RaftNodeStatus[] Rows(RaftEndpoint[] endpoints, (StatusReply? Reply, string? Error, bool Suspended)[] replies)
    {
        var leaderCommit = replies.Where(r => r.Reply?.Role == Role.Leader).Select(r => (long?)r.Reply!.CommitIndex).Max()
            ?? replies.Where(r => r.Reply is not null).Select(r => (long?)r.Reply!.CommitIndex).Max();
        var rows = new RaftNodeStatus[endpoints.Length];
        for (var i = 0; i < rows.Length; i++)
        {
            var (reply, error, suspended) = replies[i];
            var e = endpoints[i];
            rows[i] = reply is null
                ? new RaftNodeStatus
                {
                    Id = _ids.TryGetValue(e, out var id) ? id : null, Address = e.Host, Port = e.Port,
                    Health = suspended ? RaftNodeHealth.Suspended : RaftNodeHealth.Unreachable, Error = error,
                }
                : new RaftNodeStatus
                {
                    Id = reply.Id, Address = e.Host, Port = e.Port, Health = RaftNodeHealth.Ok,
                    Role = (RaftRole)(int)reply.Role, Term = reply.Term, LeaderId = reply.Leader?.Id,
                    CommitIndex = reply.CommitIndex, AppliedIndex = reply.AppliedIndex, LastIndex = reply.LastIndex,
                    Lag = leaderCommit is { } c ? Math.Max(0, c - reply.AppliedIndex) : null,
                    LogBytes = reply.LogBytes,
                    SinceLeaderContact = reply.Role == Role.Leader || reply.LeaderContactMs < 0 ? null : TimeSpan.FromMilliseconds(reply.LeaderContactMs),
                    ReadsTotal = reply.ReadsTotal, WritesTotal = reply.WritesTotal,
                    FsyncP99 = reply.FsyncP99Seconds > 0 ? TimeSpan.FromSeconds(reply.FsyncP99Seconds) : null,
                    NoSpaceAlarm = reply.NospaceAlarm,
                };
        }
        return rows.OrderBy(r => r.Id ?? int.MaxValue).ThenBy(r => r.Port).ToArray();
    }
}
