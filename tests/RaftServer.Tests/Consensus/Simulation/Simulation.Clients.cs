using System.Globalization;
using System.Text;
using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.StateMachine;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>A write whose outcome its client never learned: resolved at the end against the agreed log.</summary>
internal sealed record UnknownWrite(Operation Op, byte[] Data);

/// <summary>
/// Simulated clients: writes, compare-and-sets (on the revision or the value the client last
/// read) and linearizable reads through the node's driver (the server's own request handling),
/// recorded as a history for the linearizability checker. Writes use client sessions and are
/// retried across nodes with the same sequence, so a retry's answer is the session's memory of
/// the first outcome, which the checker holds to the same standard.
/// </summary>
internal sealed partial class Simulation
{
    public void AddClients(int count)
    {
        for (int i = 0; i < count; i++) clients.Add(new SimClient(clients.Count, random.Next(Nodes.Length)));
    }

    private long OperationTimeout => TicksToSteps(4 * Config.ElectionTicks);

    private void RunClients()
    {
        foreach (var client in clients)
        {
            if (client.State is SimClient.Phase.AwaitWrite or SimClient.Phase.AwaitRead)
            {
                if (Now >= client.Deadline) GiveUp(client);
                continue;
            }
            if (Now < client.NextActionAt) continue;
            if (client.State == SimClient.Phase.RetryWrite)
            {
                if (Now >= client.Deadline) GiveUp(client);
                else SubmitWrite(client);
                continue;
            }
            StartOperation(client);
        }
    }

    private void StartOperation(SimClient client)
    {
        var node = Nodes[client.PreferredNode];
        if (!node.Alive || node.IsPaused(Now))
        {
            client.PreferredNode = random.Next(Nodes.Length);
            client.NextActionAt = Now + random.Next(1, Config.StepsPerTick);
            return;
        }
        client.Key = 1 + random.Next(Keys);
        client.CallTime = Now;
        client.Deadline = Now + OperationTimeout;
        var roll = random.Next(10);
        if (roll < 4)
        {
            client.Node = node.Id;
            client.Read = new PendingRead { Key = Key(client.Key) };
            node.Driver!.Handle(new ReadRequested(client.Read));
            client.State = SimClient.Phase.AwaitRead;
            HandleReady(node);
            return;
        }

        client.Kind = roll switch { < 6 => OpKind.Write, < 8 => OpKind.CasRevision, _ => OpKind.CasValue };
        client.Value = nextValue++;
        client.Sequence++;
        var (lastValue, lastRevision) = client.LastRead.TryGetValue(client.Key, out var seen) ? seen : (0, 0L);
        var condition = default(WriteCondition);
        if (client.Kind == OpKind.CasRevision)
        {
            client.Expected = lastRevision;
            condition = WriteCondition.IfModRevision(lastRevision);
        }
        else if (client.Kind == OpKind.CasValue)
        {
            client.Expected = lastValue;
            condition = lastValue == 0 ? WriteCondition.IfAbsent : WriteCondition.IfValue(Bytes(lastValue));
        }
        client.Data = RaftServer.StateMachine.Command.EncodePut(0, client.Session, client.Sequence, Key(client.Key), Bytes(client.Value), condition);
        SubmitWrite(client);
    }

    /// <summary>Sends the client's write (the same command every time) to the node it prefers.</summary>
    private void SubmitWrite(SimClient client)
    {
        var node = Nodes[client.PreferredNode];
        if (!node.Alive || node.IsPaused(Now))
        {
            client.State = SimClient.Phase.RetryWrite;
            Redirect(client, Simulation.NoLeader);
            return;
        }
        client.Node = node.Id;
        client.Write = new PendingWrite(client.Data!);
        node.Driver!.Handle(new WriteRequested(client.Write));
        if (client.Write.Task.IsCompleted)
        {
            // Refused before it was proposed (not the leader, a transfer): try the hint.
            client.State = SimClient.Phase.RetryWrite;
            Redirect(client, client.Write.Task.Result.LeaderHint);
            return;
        }
        client.State = SimClient.Phase.AwaitWrite;
        HandleReady(node);
    }

    private void Redirect(SimClient client, int hint)
    {
        client.PreferredNode = hint >= 0 && random.Next(4) != 0 ? hint : random.Next(Nodes.Length);
        client.NextActionAt = Now + random.Next(1, Config.StepsPerTick);
    }

    /// <summary>After <paramref name="node"/>'s turn: what its driver answered the clients waiting on it.</summary>
    private void CollectAnswers(SimNode node)
    {
        foreach (var client in clients)
        {
            if (client.Node != node.Id) continue;
            if (client.State == SimClient.Phase.AwaitWrite && client.Write!.Task.IsCompleted)
            {
                var outcome = client.Write.Task.Result;
                if (outcome.Code == OutcomeCode.Ok)
                {
                    var r = outcome.Result;
                    var op = new Operation(client.Id, true, client.Key, client.Value, client.CallTime, Now) { Kind = client.Kind, Revision = r.Index, Expected = client.Expected };
                    if (client.Kind != OpKind.Write)
                        op = op with { Succeeded = r.Status == WriteStatus.Done, CurrentRevision = r.Status == WriteStatus.Done ? 0 : r.KeyRevision };
                    else if (r.Status != WriteStatus.Done)
                        Fail($"client {client.Id}: an unconditional write came back {r.Status}");
                    history.Add(op);
                    acknowledged.Add((r.Index, client.Data!));
                    Finish(client);
                }
                else if (Now < client.Deadline)
                {
                    // Leadership lost, a snapshot over its index: it may or may not have applied.
                    // Send it again elsewhere; the session answers exactly once.
                    client.State = SimClient.Phase.RetryWrite;
                    client.Write = null;
                    Redirect(client, outcome.LeaderHint);
                }
                else
                {
                    GiveUp(client);
                }
            }
            else if (client.State == SimClient.Phase.AwaitRead && client.Read!.Task.IsCompleted)
            {
                var outcome = client.Read.Task.Result;
                if (outcome.Code == OutcomeCode.Ok)
                {
                    int value = outcome.Found ? int.Parse(Encoding.UTF8.GetString(outcome.Value.Span), CultureInfo.InvariantCulture) : 0;
                    var revision = outcome.Found ? outcome.Item.ModRevision : 0;
                    history.Add(new Operation(client.Id, false, client.Key, value, client.CallTime, Now) { Revision = revision });
                    client.LastRead[client.Key] = (value, revision);
                    Finish(client);
                }
                else
                {
                    Finish(client); // failed: no effect, no answer
                    Redirect(client, outcome.LeaderHint);
                }
            }
        }
    }

    private void Finish(SimClient client)
    {
        client.State = SimClient.Phase.Idle;
        client.Write = null;
        client.Read = null;
        client.NextActionAt = Now + random.Next(0, Config.StepsPerTick);
    }

    /// <summary>No answer (in time): a write may still happen, or not; a read constrains nothing.</summary>
    private void GiveUp(SimClient client)
    {
        if (client.State is SimClient.Phase.AwaitWrite or SimClient.Phase.RetryWrite)
        {
            var op = new Operation(client.Id, true, client.Key, client.Value, client.CallTime, Operation.Pending) { Kind = client.Kind, Expected = client.Expected };
            unknownWrites.Add(new UnknownWrite(op, client.Data!));
        }
        Finish(client);
        client.PreferredNode = random.Next(Nodes.Length);
    }

    private void FailClientsOn(int nodeId)
    {
        foreach (var client in clients)
            if (client.State is SimClient.Phase.AwaitWrite or SimClient.Phase.AwaitRead && client.Node == nodeId)
            {
                if (client.State == SimClient.Phase.AwaitWrite && Now < client.Deadline)
                {
                    client.State = SimClient.Phase.RetryWrite;
                    client.Write = null;
                    Redirect(client, Simulation.NoLeader);
                }
                else
                    GiveUp(client);
            }
        FailLeaseClientsOn(nodeId);
    }

    public void StopClients()
    {
        ClientsActive = false;
        foreach (var client in clients)
            if (client.State != SimClient.Phase.Idle) GiveUp(client);
        StopLeaseClients();
    }

    /// <summary>
    /// Each write whose outcome its client never learned is settled by the agreed log: the first
    /// entry holding its command (the same session and sequence on every attempt, so the only one
    /// that took effect) applied it, at the latest when that index was first applied anywhere
    /// (that is when it had committed), at that revision, with whatever outcome its condition had
    /// then. A write with no such entry is left out: every state a client saw was applied from
    /// the agreed log, so no operation of the history saw it take effect, and a read of its value
    /// must fail the check. (Left open, as "at any time or never", a few dozen of them on one key,
    /// which a long stretch without a leader makes, grow the checker's search exponentially.)
    /// </summary>
    private IEnumerable<Operation> ResolveUnknownWrites()
    {
        foreach (var w in unknownWrites)
        {
            var at = applied.FindIndex(e => e.Kind == EntryKind.Command && e.Data.AsSpan().SequenceEqual(w.Data));
            if (at >= 0)
                yield return w.Op with { Revision = at + 1, Return = Math.Max(w.Op.Call, appliedAt[at]) };
        }
    }
}
