using System.Net.Sockets;
using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.StateMachine;
using RaftServer.Transport;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>
/// A simulated node's ports for the server's <see cref="RaftDriver"/>: its messages go into the
/// simulated network, its snapshots are in-memory images moved by simulated transfers. (Its log
/// is the <see cref="SimNode"/> itself.)
/// </summary>
internal sealed class SimPorts(Simulation sim, SimNode node) : IMessageSender, ISnapshotPort, IPeerSockets
{
    // ---- IMessageSender: the simulated network ----

    public void Send(IReadOnlyList<Message> messages)
    {
        for (int i = 0; i < messages.Count; i++)
            if (messages[i].Type != MessageType.Snapshot) sim.Send(messages[i]);
    }

    public void Pause() { }
    public void Resume() { }

    // ---- ISnapshotPort ----

    public void Restarted(RecoveredNode recovered) { }

    // Snapshots are taken by the simulation after each Ready is advanced (Simulation.Snapshots.cs),
    // as the server compacts only once the state machine has applied (and the save completed).
    public void AfterApply(RaftNode core, KvStore state, long appliedTerm) { }
    public void Saved(SnapshotSaved saved, RaftNode? core) => throw new InvalidOperationException("the simulation saves snapshots synchronously");
    public void SaveFailed(SnapshotSaveFailed failed) => throw new InvalidOperationException("the simulation saves snapshots synchronously");
    public void Received(object data) { }
    public void DropUnclaimed(object? installed) { }

    public KvStore Install(SnapshotMetadata meta, object? data) => sim.InstallSnapshot(node, meta, (SimSnapshot)data!);

    public void SendSnapshots(IReadOnlyList<Message> messages)
    {
        for (int i = 0; i < messages.Count; i++)
            if (messages[i].Type == MessageType.Snapshot) sim.SendSnapshot(messages[i]);
    }

    public void CancelTransfers() { }

    // ---- IPeerSockets: messages are delivered by the simulation, not read off sockets ----

    public bool HasConnections => false;
    public void Add(Socket socket, int peerId) => throw new InvalidOperationException("no sockets in the simulation");
    public void AddTls(TlsPeerConnection connection, int peerId) => throw new InvalidOperationException("no sockets in the simulation");
    public bool Spin(Func<bool> hasWork) => false;
    public void Sleep(int timeoutMs) { }
    public void Wake() { }
    public void ReadAvailable(Action<List<Message>> deliver) { }
    public void CloseAll() { }
}
