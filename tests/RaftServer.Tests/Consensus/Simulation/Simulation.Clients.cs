using RaftServer.Consensus;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>Simulated clients: writes through Propose, linearizable reads through ReadIndex,
/// recorded as a history for the linearizability checker.</summary>
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
        var core = node.Core!;
        client.Key = 1 + random.Next(Keys);
        client.IsWrite = random.Next(2) == 0;
        client.Node = node.Id;
        client.CallTime = Now;
        client.Deadline = Now + OperationTimeout;
        if (client.IsWrite)
        {
            client.Value = nextValue++;
            var result = core.Propose(SimNode.Encode(client.Key, client.Value));
            if (result.Outcome != ProposeOutcome.Accepted)
            {
                Redirect(client, result.LeaderHint);
                return;
            }
            client.Index = result.Index;
            client.Term = result.Term;
            client.State = SimClient.Phase.AwaitApply;
        }
        else
        {
            client.RequestId = nextRequestId++;
            if (!core.ReadIndex(client.RequestId))
            {
                Redirect(client, NoLeader);
                return;
            }
            client.State = SimClient.Phase.AwaitReadState;
        }
        HandleReady(node);
    }

    private void Redirect(SimClient client, int hint)
    {
        client.PreferredNode = hint >= 0 && random.Next(4) != 0 ? hint : random.Next(Nodes.Length);
        client.NextActionAt = Now + random.Next(1, Config.StepsPerTick);
    }

    private void OnReadState(SimNode node, ReadState read)
    {
        foreach (var client in clients)
        {
            if (client.State != SimClient.Phase.AwaitReadState || client.Node != node.Id || client.RequestId != read.RequestId) continue;
            if (read.Index < 0)
            {
                Finish(client); // failed fast: no effect, no answer
                Redirect(client, NoLeader);
                return;
            }
            client.Index = read.Index;
            client.State = SimClient.Phase.AwaitApplied;
            return;
        }
    }

    private void CompleteReads(SimNode node)
    {
        foreach (var client in clients)
        {
            if (client.State != SimClient.Phase.AwaitApplied || client.Node != node.Id) continue;
            if (node.AppliedLog.Count < client.Index) continue;
            int value = node.Kv.GetValueOrDefault(client.Key);
            history.Add(new Operation(client.Id, false, client.Key, value, client.CallTime, Now));
            Finish(client);
        }
    }

    private void Finish(SimClient client)
    {
        client.State = SimClient.Phase.Idle;
        client.NextActionAt = Now + random.Next(0, Config.StepsPerTick);
    }

    /// <summary>No answer in time: a write may still happen (or not), a read constrains nothing.</summary>
    private void GiveUp(SimClient client)
    {
        if (client.IsWrite && client.State == SimClient.Phase.AwaitApply)
            history.Add(new Operation(client.Id, true, client.Key, client.Value, client.CallTime, Operation.Pending));
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
}
