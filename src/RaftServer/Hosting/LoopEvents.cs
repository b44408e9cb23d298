using System.Net.Sockets;
using RaftServer.Consensus;
using RaftServer.Storage;

namespace RaftServer.Hosting;

/// <summary>
/// Everything that reaches the node loop from other threads, as a closed hierarchy: the
/// constructor is private to this assembly and each event dispatches itself to the one
/// <see cref="ILoopEventHandler"/> method for its type, so a new event that has no handler does
/// not compile (no type switch, no catch-all).
/// </summary>
public abstract class LoopEvent
{
    private protected LoopEvent()
    {
    }

    internal abstract void DispatchTo(ILoopEventHandler handler);
}

/// <summary>The node loop's handling of each <see cref="LoopEvent"/> (the <see cref="RaftDriver"/>).</summary>
public interface ILoopEventHandler
{
    void Handle(MessagesReceived e);
    void Handle(WriteRequested e);
    void Handle(WritesRequested e);
    void Handle(ReadRequested e);
    void Handle(StatusRequested e);
    void Handle(SuspendRequested e);
    void Handle(PeerConnected e);
    void Handle(PeerUnreachable e);
    void Handle(SnapshotSaved e);
    void Handle(SnapshotSaveFailed e);
    void Handle(SnapshotTransferEnded e);
    void Handle(MemberChangeRequested e);
    void Handle(TransferRequested e);
    void Handle(ResumeRequested e);
    void Handle(MetricsRequested e);
    void Handle(DiskFailed e);
}

/// <summary>Messages for the core that did not arrive on a peer connection: a received snapshot
/// (the peer connections' batches are read by the loop itself, <see cref="Transport.IPeerSockets"/>).</summary>
public sealed class MessagesReceived(List<Message> messages) : LoopEvent
{
    public List<Message> Messages { get; } = messages;
    internal override void DispatchTo(ILoopEventHandler handler) => handler.Handle(this);
}

/// <summary>A client write to propose.</summary>
public sealed class WriteRequested(PendingWrite write) : LoopEvent
{
    public PendingWrite Write { get; } = write;
    internal override void DispatchTo(ILoopEventHandler handler) => handler.Handle(this);
}

/// <summary>Several client writes, proposed in this order in one turn, each its own entry.</summary>
public sealed class WritesRequested(PendingWrite[] writes) : LoopEvent
{
    public PendingWrite[] Writes { get; } = writes;
    internal override void DispatchTo(ILoopEventHandler handler) => handler.Handle(this);
}

/// <summary>A client read (Get or Range).</summary>
public sealed class ReadRequested(PendingRead read) : LoopEvent
{
    public PendingRead Read { get; } = read;
    internal override void DispatchTo(ILoopEventHandler handler) => handler.Handle(this);
}

/// <summary>A Status call.</summary>
public sealed class StatusRequested : LoopEvent
{
    public TaskCompletionSource<NodeStatus> Reply { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    internal override void DispatchTo(ILoopEventHandler handler) => handler.Handle(this);
}

/// <summary>A Suspend call: the node stops for this long, then resumes from its data directory.</summary>
public sealed class SuspendRequested(double seconds) : LoopEvent
{
    public double Seconds { get; } = seconds;
    internal override void DispatchTo(ILoopEventHandler handler) => handler.Handle(this);
}

/// <summary>A peer's message connection, its preface and hello read, for the loop to read from now on.</summary>
public sealed class PeerConnected(Socket? socket, int peerId, Transport.TlsPeerConnection? tls = null) : LoopEvent
{
    /// <summary>A plain connection, read by the loop itself; null for a peer TLS connection (<see cref="Tls"/>).</summary>
    public Socket? Socket { get; } = socket;
    public Transport.TlsPeerConnection? Tls { get; } = tls;
    /// <summary>The node its hello named: the only sender whose batches it may carry.</summary>
    public int PeerId { get; } = peerId;
    internal override void DispatchTo(ILoopEventHandler handler) => handler.Handle(this);
}

/// <summary>A connection to a peer was refused: nothing listens on its port, its process is gone
/// (a hint for the core, <see cref="RaftNode.LeaderUnreachable"/>).</summary>
public sealed class PeerUnreachable(int peerId) : LoopEvent
{
    public int PeerId { get; } = peerId;
    internal override void DispatchTo(ILoopEventHandler handler) => handler.Handle(this);
}

/// <summary>A snapshot this node took is durable (written by a background task).</summary>
public sealed class SnapshotSaved(SnapshotFile file, int generation, long milliseconds) : LoopEvent
{
    public SnapshotFile File { get; } = file;
    /// <summary>Which incarnation of the core it was taken for (a resume rebuilds the core).</summary>
    public int Generation { get; } = generation;
    public long Milliseconds { get; } = milliseconds;
    internal override void DispatchTo(ILoopEventHandler handler) => handler.Handle(this);
}

/// <summary>Writing a snapshot failed: fatal when the disk failed (<see cref="DiskFailureException"/>).</summary>
public sealed class SnapshotSaveFailed(Exception error) : LoopEvent
{
    public Exception Error { get; } = error;
    internal override void DispatchTo(ILoopEventHandler handler) => handler.Handle(this);
}

/// <summary>The leader's transfer of its snapshot to a peer ended (for <see cref="RaftNode.ReportSnapshot"/>).</summary>
public sealed class SnapshotTransferEnded(int peer, bool success) : LoopEvent
{
    public int Peer { get; } = peer;
    public bool Success { get; } = success;
    internal override void DispatchTo(ILoopEventHandler handler) => handler.Handle(this);
}

/// <summary>A membership change (add a learner or a voter, promote a learner, remove a member),
/// answered through <see cref="Write"/> once the new configuration is applied.</summary>
public sealed class MemberChangeRequested(ChangeKind kind, int id, string host, int port) : LoopEvent
{
    public ChangeKind Kind { get; } = kind;
    public int Id { get; } = id;
    public string Host { get; } = host;
    public int Port { get; } = port;
    public PendingWrite Write { get; } = new([]);
    internal override void DispatchTo(ILoopEventHandler handler) => handler.Handle(this);
}

/// <summary>Hand leadership to <see cref="Target"/> (null: the most up-to-date voter); answered
/// once this node follows the new leader.</summary>
public sealed class TransferRequested(int? target) : LoopEvent
{
    public int? Target { get; } = target;
    public TaskCompletionSource<TransferOutcome> Reply { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    /// <summary>The loop tick after which the transfer has failed.</summary>
    internal long DeadlineTick;
    internal override void DispatchTo(ILoopEventHandler handler) => handler.Handle(this);
}

/// <summary>End a suspension now.</summary>
public sealed class ResumeRequested : LoopEvent
{
    internal override void DispatchTo(ILoopEventHandler handler) => handler.Handle(this);
}

/// <summary>A metrics scrape: the loop's state for the gauges (<see cref="Observability.NodeMetrics"/>).</summary>
public sealed class MetricsRequested : LoopEvent
{
    public TaskCompletionSource<Observability.NodeGauges> Reply { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    internal override void DispatchTo(ILoopEventHandler handler) => handler.Handle(this);
}

/// <summary>A durable step off the loop thread failed (receiving a leader's snapshot): the node
/// stops, as it does when the log's own write or fsync fails.</summary>
public sealed class DiskFailed(Exception error) : LoopEvent
{
    public Exception Error { get; } = error;
    internal override void DispatchTo(ILoopEventHandler handler) => handler.Handle(this);
}
