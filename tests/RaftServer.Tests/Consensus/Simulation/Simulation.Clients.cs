using System.Globalization;
using System.Text;
using RaftServer.Consensus;
using RaftServer.Hosting;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>A write whose outcome its client never learned: resolved at the end against the agreed log.</summary>
internal sealed record UnknownWrite(int ClientId, int Key, int Value, long Call, long Index, long Term, byte[] Data);

/// <summary>Simulated clients: writes and linearizable reads through the node's driver (the
/// server's own request handling), recorded as a history for the linearizability checker.</summary>
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
            if (client.State != SimClient.Phase.Idle)
            {
                if (Now >= client.Deadline) GiveUp(client);
                continue;
            }
            if (Now < client.NextActionAt) continue;
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
        var driver = node.Driver!;
        client.Key = 1 + random.Next(Keys);
        client.IsWrite = random.Next(2) == 0;
        client.Node = node.Id;
        client.CallTime = Now;
        client.Deadline = Now + OperationTimeout;
        if (client.IsWrite)
        {
            client.Value = nextValue++;
            client.Write = new PendingWrite(Command(client.Key, client.Value));
            driver.Handle(new WriteRequested(client.Write));
            if (client.Write.Task.IsCompleted)
            {
                // Refused before it was proposed (not the leader, a transfer): no effect.
                Redirect(client, client.Write.Task.Result.LeaderHint);
                client.Write = null;
                return;
            }
            client.State = SimClient.Phase.AwaitWrite;
        }
        else
        {
            client.Read = new PendingRead { Key = Key(client.Key) };
            driver.Handle(new ReadRequested(client.Read));
            client.State = SimClient.Phase.AwaitRead;
        }
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
                    history.Add(new Operation(client.Id, true, client.Key, client.Value, client.CallTime, Now));
                    acknowledged.Add((outcome.Result.Index, client.Write.Term, client.Write.Data));
                    Finish(client);
                }
                else
                {
                    // Leadership lost, a snapshot over its index, a timeout: it may or may not commit.
                    GiveUp(client);
                }
            }
            else if (client.State == SimClient.Phase.AwaitRead && client.Read!.Task.IsCompleted)
            {
                var outcome = client.Read.Task.Result;
                if (outcome.Code == OutcomeCode.Ok)
                {
                    int value = outcome.Found ? int.Parse(Encoding.UTF8.GetString(outcome.Value!), CultureInfo.InvariantCulture) : 0;
                    history.Add(new Operation(client.Id, false, client.Key, value, client.CallTime, Now));
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

    /// <summary>No answer (in time): a proposed write may still happen, or not; a read constrains nothing.</summary>
    private void GiveUp(SimClient client)
    {
        if (client.State == SimClient.Phase.AwaitWrite && client.Write is { } w)
            unknownWrites.Add(new UnknownWrite(client.Id, client.Key, client.Value, client.CallTime, w.Index, w.Term, w.Data));
        Finish(client);
        client.PreferredNode = random.Next(Nodes.Length);
    }

    private void FailClientsOn(int nodeId)
    {
        foreach (var client in clients)
            if (client.State != SimClient.Phase.Idle && client.Node == nodeId) GiveUp(client);
    }

    public void StopClients()
    {
        ClientsActive = false;
        foreach (var client in clients)
            if (client.State != SimClient.Phase.Idle) GiveUp(client);
    }

    /// <summary>
    /// Each write whose outcome its client never learned is settled by the agreed log: if its
    /// entry (index, term and data) was applied, it took effect, at the latest when that index was
    /// first applied anywhere (that is when it had committed); if another entry was applied at its
    /// index, it never took effect; otherwise it is left open (it may take effect at any time).
    /// </summary>
    private IEnumerable<Operation> ResolveUnknownWrites()
    {
        foreach (var w in unknownWrites)
        {
            if (w.Index <= 0 || w.Index > applied.Count)
            {
                yield return new Operation(w.ClientId, true, w.Key, w.Value, w.Call, Operation.Pending);
                continue;
            }
            var entry = applied[(int)w.Index - 1];
            if (entry.Term == w.Term && entry.Data.AsSpan().SequenceEqual(w.Data))
                yield return new Operation(w.ClientId, true, w.Key, w.Value, w.Call, Math.Max(w.Call, appliedAt[(int)w.Index - 1]));
        }
    }
}
