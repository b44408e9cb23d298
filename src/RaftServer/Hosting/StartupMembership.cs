using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using RaftServer.Cluster;
using RaftServer.Consensus;
using RaftServer.Storage;
using RaftServer.Transport;
using P = RaftPS.Protocol;

namespace RaftServer.Hosting;

/// <summary>A start-up failure in finding the cluster's members (exit code 2, like a bad config).</summary>
public sealed class MembershipException(string message) : Exception(message);

/// <summary>
/// Who a starting node's members are, and what configuration its core starts from when its log
/// holds none. In order: the configuration in its data directory (log or snapshot: config.conf
/// is then not needed, and ignored); the members it learned when it joined
/// (<see cref="MemberFile"/>); the members a cluster gives it through <c>--join</c>; config.conf,
/// which only ever bootstraps a brand-new cluster (all its nodes voters, recorded in the log by
/// the first leader).
/// A joining node asks a member for the members as etcd's does (over its peer URL, with its peer
/// certificate): with peer TLS, over a peer TLS connection, so the answer comes from a member whose
/// certificate the cluster's CA issued, whatever the client TLS and token options are; without it,
/// over plain HTTP/2, where ListMembers needs no credentials (docs/security.md, "Joining").
/// </summary>
public sealed record StartupMembership(MemberSet Members, Configuration Bootstrap, bool PersistBootstrap, string Source)
{
    private static readonly TimeSpan JoinPatience = TimeSpan.FromSeconds(30);

    /// <exception cref="ConfigException">config.conf is needed and missing or malformed, or join.conf is malformed.</exception>
    /// <exception cref="MembershipException">the cluster to join cannot be reached, or does not list this node.</exception>
    /// <param name="peerTls">This node's peer TLS, when on: a join asks over it.</param>
    public static async Task<StartupMembership> ResolveAsync(NodeSettings settings, PersistedState persisted, string dataDirectory,
        ILogger logger, CancellationToken ct, PeerTls? peerTls = null)
    {
        var inLog = ConfigurationOf(persisted);
        var config = File.Exists(settings.ConfigPath) ? ClusterConfig.Load(settings.ConfigPath) : null;
        var joinFile = MemberFile.PathIn(dataDirectory);
        var joined = MemberFile.TryRead(joinFile);
        if (inLog is { Count: > 0 })
        {
            if (settings.Join is not null) logger.LogInformation("--join is ignored: the data directory holds the cluster's configuration");
            // Addresses the log lacks (a snapshot written before snapshots carried them) come from what else is known.
            var fromFile = config is null ? null : MemberSet.FromConfig(config);
            var known = joined ?? fromFile;
            // Should the log's configuration be an uncommitted entry that a new leader truncates
            // away, the core falls back to the bootstrap one: config.conf's for a node that
            // bootstrapped the cluster, none for one that joined it (it waits to be told).
            var fallback = joined is null && fromFile is not null ? fromFile.ToConfiguration() : Configuration.Empty;
            return new(MemberSet.FromConfiguration(inLog, known), fallback, fallback.Count > 0, "the data directory");
        }
        if (joined is not null) return new(joined, Configuration.Empty, false, joinFile);
        if (settings.Join is { } join)
        {
            var (members, clusterId) = await FetchAsync(join, settings.Id, logger, peerTls, ct);
            // The cluster's id first: a node that has its members file has joined, and must not
            // take part before it knows which cluster it belongs to (when the cluster has one yet).
            if (clusterId != ClusterIdentity.Unknown && ClusterIdFile.Read(dataDirectory) == ClusterIdentity.Unknown)
                ClusterIdFile.Write(dataDirectory, clusterId);
            MemberFile.Write(joinFile, members);
            return new(members, Configuration.Empty, false, join.Authority);
        }
        if (config is null)
            throw new ConfigException($"{settings.ConfigPath}: file not found (a new cluster's nodes are listed in it; to join an existing cluster, start with --join HOST:PORT)");
        var bootstrap = MemberSet.FromConfig(config);
        return new(bootstrap, bootstrap.ToConfiguration(), true, settings.ConfigPath);
    }

    /// <summary>The last configuration the recovered log holds, else the snapshot's; null when neither has one.</summary>
    public static Configuration? ConfigurationOf(PersistedState persisted)
    {
        for (var i = persisted.Entries.Count - 1; i >= 0; i--)
            if (persisted.Entries[i].Kind == EntryKind.Configuration)
                return Configuration.Decode(persisted.Entries[i].Data);
        return persisted.SnapshotConfiguration;
    }

    /// <summary>Asks a member of the cluster for its members (it forwards to the leader), retrying while it starts or elects.</summary>
    /// <summary>The peer TLS refusal inside a failed call, if that is why it failed.</summary>
    private static PeerTlsRefusedException? Refusal(RpcException e)
    {
        for (Exception? inner = e.Status.DebugException; inner is not null; inner = inner.InnerException)
            if (inner is PeerTlsRefusedException { Kind: "plain" or "certificate" } refused) return refused;
        return null;
    }

    private static async Task<(MemberSet Members, ulong ClusterId)> FetchAsync(NodeAddress join, int self, ILogger logger, PeerTls? peerTls, CancellationToken ct)
    {
        // With peer TLS: HTTP/2 inside a peer TLS connection, as forwarded calls go; the node there
        // may be any member (its certificate names which), it is called by its address.
        var answeredBy = new PeerCertificateVerdict();
        using var handler = new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(5) };
        peerTls?.ConfigureHandler(handler, new NodeAddress(-1, join.Host, join.Port), answeredBy);
        using var channel = GrpcChannel.ForAddress(join.HttpUri, new GrpcChannelOptions { HttpHandler = handler });
        var client = new P.RaftClient.RaftClientClient(channel);
        var over = peerTls is null ? "" : " over peer TLS";
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var delay = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            try
            {
                var reply = await client.ListMembersAsync(new P.ListMembersRequest(), deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: ct);
                var members = new MemberSet(reply.Members.Select(m => new Member(new NodeAddress(m.Node.Id, m.Node.Address, m.Node.Port),
                    m.Node.Role == P.MemberRole.Learner ? MemberRole.Learner : MemberRole.Voter)));
                if (!members.Contains(self))
                    throw new MembershipException($"node {self} is not a member of the cluster at {join.Authority} (members: {members}); " +
                        $"add it first (Add-RaftNode -Id {self} -Address HOST -Port PORT, or the AddMember call), then start it");
                // The answer is a member's only when its certificate names one of the members it lists.
                if (peerTls is not null && !members.Contains(answeredBy.NodeId))
                    throw new MembershipException($"the node at {join.Authority} has a certificate naming node {answeredBy.NodeId}, " +
                        $"which is not a member of the cluster it describes (members: {members})");
                logger.LogInformation("Joining cluster {ClusterId} of {Members} (asked {Node}{Over})", ClusterIdentity.Format(reply.ClusterId), members.ToString(),
                    peerTls is null ? join.Authority : $"node {answeredBy.NodeId} at {join.Authority}", over);
                return (members, reply.ClusterId);
            }
            catch (RpcException e) when (Refusal(e) is { } refused)
            {
                // A peer TLS refusal (a plain node, a certificate of another CA): the settings are wrong, waiting will not help.
                throw new MembershipException($"cannot join through {join.Authority}: {refused.Message}");
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded && clock.Elapsed < JoinPatience)
            {
                logger.LogInformation("Waiting for the cluster at {Address}: {Error}", join.Authority, e.Status.Detail);
                await Task.Delay(delay, ct);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(2).Ticks));
            }
            catch (RpcException e)
            {
                throw new MembershipException($"cannot join through {join.Authority}: {e.Status.StatusCode}: {e.Status.Detail}");
            }
        }
    }
}
