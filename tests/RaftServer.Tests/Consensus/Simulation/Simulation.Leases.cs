using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.StateMachine;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>A simulated lease holder: grants a lease, attaches its key, keeps it alive through the
/// leader, and now and then lets it lapse or revokes it.</summary>
internal sealed class SimLeaseClient(int id, int preferredNode)
{
    public enum Phase { Idle, Granting, Attaching, Holding, Revoking }

    public int Id { get; } = id;
    public ulong Session { get; } = 500_000 + (ulong)id;
    public ulong Sequence;
    public string Key => $"L{Id}";
    public int PreferredNode = preferredNode;
    public Phase State = Phase.Idle;
    public long Lease;
    public long TtlMs;
    public byte[]? Data;
    public PendingWrite? Write;
    public PendingRead? KeepAlive;
    public long KeepAliveSentAt;
    public long CallTime;
    public long Deadline;
    public long NextActionAt;
    public int Node;
    /// <summary>Stopped keeping the lease alive (as a script that died): the leader must expire it.</summary>
    public bool Abandoned;
}

/// <summary>
/// Lease clients, and the property that makes leases safe to lock with: when the leader revokes a
/// lease because it expired, no client was told the lease was alive for longer than that. Every
/// acknowledged grant and keep-alive was sent at some time s; the client may rely on the lease
/// until s + ttl; the revoke must not apply (anywhere) before then (<see cref="CheckLeases"/>).
/// </summary>
internal sealed partial class Simulation
{
    private readonly List<SimLeaseClient> leaseClients = new();
    /// <summary>Acknowledged grants and keep-alives: the lease, its ttl and when the request was sent.</summary>
    private readonly List<(long Lease, long TtlMs, long SentAt)> leaseAcks = new();

    public int LeaseAcks => leaseAcks.Count;
    public long LeaseTtlMs { get; set; }

    /// <summary>The number of leases the agreed log revoked because they expired.</summary>
    public int LeasesExpired => applied.Count(e => IsExpiry(e, out _));

    public void AddLeaseClients(int count, long ttlMs)
    {
        LeaseTtlMs = ttlMs;
        for (var i = 0; i < count; i++) leaseClients.Add(new SimLeaseClient(leaseClients.Count, random.Next(Nodes.Length)));
    }

    private void RunLeaseClients()
    {
        foreach (var c in leaseClients)
        {
            if (c.Write is { } w && w.Task.IsCompleted) Answered(c, w.Task.Result);
            if (c.KeepAlive is { } k && k.Task.IsCompleted) KeptAlive(c, k.Task.Result);
            if ((c.Write is not null || c.KeepAlive is not null) && Now >= c.Deadline)
            {
                // No answer in time: a write may still apply; the client moves on.
                c.Write = null;
                c.KeepAlive = null;
                if (c.State != SimLeaseClient.Phase.Holding) c.State = SimLeaseClient.Phase.Idle;
            }
            if (c.Write is not null || c.KeepAlive is not null || Now < c.NextActionAt) continue;

            switch (c.State)
            {
                case SimLeaseClient.Phase.Idle:
                    c.Abandoned = false;
                    c.TtlMs = LeaseTtlMs;
                    c.State = SimLeaseClient.Phase.Granting;
                    Send(c, RaftServer.StateMachine.Command.EncodeLeaseGrant(0, c.Session, ++c.Sequence, c.TtlMs), fresh: true);
                    break;
                case SimLeaseClient.Phase.Granting or SimLeaseClient.Phase.Attaching or SimLeaseClient.Phase.Revoking:
                    Send(c, c.Data!, fresh: false); // the same command again (its session answers once)
                    break;
                case SimLeaseClient.Phase.Holding:
                    var roll = random.Next(40);
                    if (!c.Abandoned && roll == 0)
                    {
                        c.Abandoned = true; // the script died: nobody keeps the lease alive now
                        c.NextActionAt = Now + 4 * c.TtlMs;
                    }
                    else if (c.Abandoned)
                    {
                        c.State = SimLeaseClient.Phase.Idle; // a new script starts
                    }
                    else if (roll == 1)
                    {
                        c.State = SimLeaseClient.Phase.Revoking;
                        Send(c, RaftServer.StateMachine.Command.EncodeLeaseRevoke(0, c.Session, ++c.Sequence, c.Lease, expired: false), fresh: true);
                    }
                    else
                    {
                        SendKeepAlive(c);
                    }
                    break;
            }
        }
    }

    private SimNode? PickNode(SimLeaseClient c)
    {
        var node = Nodes[c.PreferredNode];
        if (node.Alive && !node.IsPaused(Now)) return node;
        c.PreferredNode = random.Next(Nodes.Length);
        c.NextActionAt = Now + random.Next(1, Config.StepsPerTick);
        return null;
    }

    private void Send(SimLeaseClient c, byte[] data, bool fresh)
    {
        c.Data = data;
        if (fresh) c.CallTime = Now;
        if (PickNode(c) is not { } node) return;
        c.Node = node.Id;
        c.Deadline = Now + OperationTimeout;
        c.Write = new PendingWrite(data);
        node.Driver!.Handle(new WriteRequested(c.Write));
        if (!c.Write.Task.IsCompleted) HandleReady(node);
    }

    private void SendKeepAlive(SimLeaseClient c)
    {
        if (PickNode(c) is not { } node) return;
        c.Node = node.Id;
        c.KeepAliveSentAt = Now;
        c.Deadline = Now + OperationTimeout;
        c.KeepAlive = new PendingRead { KeepAliveLease = c.Lease };
        node.Driver!.Handle(new ReadRequested(c.KeepAlive));
        HandleReady(node);
    }

    private void Answered(SimLeaseClient c, WriteOutcome outcome)
    {
        c.Write = null;
        if (outcome.Code != OutcomeCode.Ok)
        {
            Redirect(c, outcome.LeaderHint);
            return; // sent again on the next action
        }
        switch (c.State)
        {
            case SimLeaseClient.Phase.Granting:
                c.Lease = outcome.Result.Index;
                leaseAcks.Add((c.Lease, c.TtlMs, c.CallTime));
                c.State = SimLeaseClient.Phase.Attaching;
                c.Data = RaftServer.StateMachine.Command.EncodePut(0, c.Session, ++c.Sequence, c.Key, Bytes(c.Id), default, c.Lease);
                c.NextActionAt = Now;
                break;
            case SimLeaseClient.Phase.Attaching:
                c.State = outcome.Result.Status == WriteStatus.LeaseNotFound ? SimLeaseClient.Phase.Idle : SimLeaseClient.Phase.Holding;
                c.NextActionAt = Now + c.TtlMs / 4;
                break;
            case SimLeaseClient.Phase.Revoking:
                c.State = SimLeaseClient.Phase.Idle;
                c.NextActionAt = Now + random.Next(0, (int)c.TtlMs);
                break;
        }
    }

    private void KeptAlive(SimLeaseClient c, ReadOutcome outcome)
    {
        c.KeepAlive = null;
        if (outcome.Code != OutcomeCode.Ok)
        {
            Redirect(c, outcome.LeaderHint);
            return;
        }
        if (!outcome.Found)
        {
            c.State = SimLeaseClient.Phase.Idle; // the lease is gone: start over
            return;
        }
        if (outcome.LeaseTtlMs != c.TtlMs) Fail($"lease client {c.Id}: keep-alive renewed lease {c.Lease} for {outcome.LeaseTtlMs} ms, granted for {c.TtlMs}");
        leaseAcks.Add((c.Lease, c.TtlMs, c.KeepAliveSentAt));
        c.NextActionAt = Now + c.TtlMs / 4;
    }

    private void Redirect(SimLeaseClient c, int hint)
    {
        c.PreferredNode = hint >= 0 && random.Next(4) != 0 ? hint : random.Next(Nodes.Length);
        c.NextActionAt = Now + random.Next(1, Config.StepsPerTick);
    }

    private void FailLeaseClientsOn(int nodeId)
    {
        foreach (var c in leaseClients)
        {
            if (c.Node != nodeId) continue;
            c.Write = null;
            c.KeepAlive = null;
        }
    }

    private void StopLeaseClients()
    {
        foreach (var c in leaseClients)
        {
            c.Write = null;
            c.KeepAlive = null;
        }
    }

    private static bool IsExpiry(Entry e, out long lease)
    {
        lease = 0;
        if (e.Kind != EntryKind.Command || !RaftServer.StateMachine.Command.TryDecode(e.Data, out var c) || c.Op != CommandOp.LeaseRevoke || !c.Expired) return false;
        lease = c.Lease;
        return true;
    }

    /// <summary>No lease was revoked for expiry before a client's acknowledged grant or keep-alive
    /// said it could still rely on it; and every expiry revoked a lease that existed.</summary>
    private void CheckLeases()
    {
        var firstExpiry = new Dictionary<long, long>();
        for (var i = 0; i < applied.Count; i++)
            if (IsExpiry(applied[i], out var lease) && !firstExpiry.ContainsKey(lease))
                firstExpiry[lease] = appliedAt[i];
        foreach (var (lease, ttl, sentAt) in leaseAcks)
        {
            if (!firstExpiry.TryGetValue(lease, out var revokedAt)) continue;
            if (sentAt + ttl > revokedAt)
                Fail($"lease {lease} was revoked as expired at step {revokedAt}, but a grant or keep-alive sent at {sentAt} was acknowledged: its holder could rely on it until {sentAt + ttl}");
        }
    }
}

/// <summary>Requests the scenarios send to one node's driver, waiting (running the simulation) for the answer.</summary>
internal sealed partial class Simulation
{
    /// <summary>Proposes <paramref name="data"/> at <paramref name="node"/>; its answer, or null if none came within <paramref name="maxTicks"/>.</summary>
    public WriteOutcome? WriteAt(int node, byte[] data, int maxTicks)
    {
        var target = Nodes[node];
        if (target.Driver is not { } driver) return null;
        var w = new PendingWrite(data);
        driver.Handle(new WriteRequested(w));
        HandleReady(target);
        return RunUntil(() => w.Task.IsCompleted, maxTicks) ? w.Task.Result : null;
    }

    /// <summary>A keep-alive at <paramref name="node"/>; its answer, or null if none came within <paramref name="maxTicks"/>.</summary>
    public ReadOutcome? KeepAliveAt(int node, long lease, int maxTicks)
    {
        var target = Nodes[node];
        if (target.Driver is not { } driver) return null;
        var read = new PendingRead { KeepAliveLease = lease };
        driver.Handle(new ReadRequested(read));
        HandleReady(target);
        return RunUntil(() => read.Task.IsCompleted, maxTicks) ? read.Task.Result : null;
    }

    /// <summary>The first agreed index at which the leader revoked <paramref name="lease"/> as expired, and when it was first applied.</summary>
    public (long Index, long AppliedAt)? ExpiryOf(long lease)
    {
        for (var i = 0; i < applied.Count; i++)
            if (IsExpiry(applied[i], out var l) && l == lease) return (i + 1, appliedAt[i]);
        return null;
    }
}
