using System.Globalization;
using System.Text;
using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.StateMachine;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>
/// Snapshots in the simulation (the driver's <see cref="ISnapshotPort"/>, through
/// <see cref="SimPorts"/>): every <see cref="SimConfig.SnapshotEvery"/> applied entries a node
/// saves its state machine's image and compacts (durable log and core); a Snapshot message
/// starts a transfer of the sender's durable snapshot that the network delivers (after a longer
/// delay), loses, or fails, reporting the outcome back to the sender's driver (or, sometimes,
/// never: the core must time it out); the driver installs what its Ready hands it before
/// persisting anything else or sending.
/// State machine safety covers nodes that skipped entries: every snapshot loaded or installed
/// must equal the state the agreed log produces at its index.
/// </summary>
internal sealed partial class Simulation
{
    private sealed record Transfer(SimSnapshot Snapshot, int SenderIncarnation);
    private readonly record struct Report(int Node, int Incarnation, int Peer, bool Success);

    private readonly PriorityQueue<Report, (long Time, long Seq)> reports = new();
    /// <summary>The key-value state after each agreed entry ([index - 1]), when snapshots are on.</summary>
    private readonly List<string> referenceStates = new();
    /// <summary>The agreed log applied to a store of its own: the state and the changes every node must produce.</summary>
    private readonly KvStore reference = new();
    /// <summary>Every change the agreed log made, in order (what watchers must see).</summary>
    private readonly List<(long Revision, KvEventKind Kind, string Key, string Value)> referenceEvents = new();

    /// <summary>A state's pairs with their revisions, its revision and its leases, as its fingerprint.</summary>
    private static string Fingerprint(KvImage image) =>
        string.Join(",", image.Items.Select(i => $"{i.Key}={Encoding.UTF8.GetString(i.Value.Span)}@{i.CreateRevision}/{i.ModRevision}/{i.Version}/{i.Lease}"))
        + $";rev {image.Revision};leases " + string.Join(",", image.Leases.Select(l => $"{l.Id}:{l.TtlMs}"));

    public int SnapshotsTaken { get; private set; }
    public int SnapshotsInstalled { get; private set; }
    public int TransfersFailed { get; private set; }
    /// <summary>Crashes after saving a received snapshot but before discarding the old log.</summary>
    public int CrashesMidInstall { get; private set; }

    private bool SnapshotsOn => Config.SnapshotEvery > 0;

    /// <summary>A new agreed entry: apply it to the reference store, extend the reference changes and states.</summary>
    private void RecordReference(Entry entry)
    {
        reference.Apply(entry);
        foreach (var e in reference.LastEvents)
            referenceEvents.Add((e.Revision, e.Kind, e.Item.Key, Encoding.UTF8.GetString(e.Item.Value.Span)));
        if (SnapshotsOn) referenceStates.Add(Fingerprint(reference.CaptureImage()));
    }

    /// <summary>State machine safety for a node that skips entries: the snapshot's state is the one
    /// the agreed entries produce at its index.</summary>
    private void CheckSnapshotState(SimNode node, SimSnapshot snapshot, string what)
    {
        if (snapshot.Index == 0) return;
        if (snapshot.Index > applied.Count)
            Fail($"node {node.Id} {what} a snapshot at {snapshot.Index}, beyond anything applied ({applied.Count})");
        var entry = applied[(int)snapshot.Index - 1];
        if (entry.Term != snapshot.Term)
            Fail($"node {node.Id} {what} a snapshot at {snapshot.Index} of term {snapshot.Term}; the entry applied there has term {entry.Term}");
        if (Fingerprint(snapshot.Image) != referenceStates[(int)snapshot.Index - 1])
            Fail($"node {node.Id} {what} a snapshot at {snapshot.Index} with state [{Fingerprint(snapshot.Image)}] where the log gives [{referenceStates[(int)snapshot.Index - 1]}]");
    }

    /// <summary>After each Ready is advanced: snapshot and compact when the log since the last one is long.</summary>
    private void MaybeTakeSnapshot(SimNode node)
    {
        if (!SnapshotsOn) return;
        var core = node.Core!;
        long appliedIndex = node.AppliedLog.Count;
        if (appliedIndex - node.SnapshotIndex < Config.SnapshotEvery) return;
        long term = core.TermAt(appliedIndex);
        if (term < 0) Fail($"node {node.Id} applied {appliedIndex} but its core does not know the entry's term");
        var snapshot = node.TakeSnapshot(term);
        CheckSnapshotState(node, snapshot, "took");
        core.Compact(appliedIndex);
        SnapshotsTaken++;
        if (core.SnapshotIndex != node.SnapshotIndex || node.LogStart != node.SnapshotIndex)
            Fail($"node {node.Id}: core snapshot {core.SnapshotIndex}, durable {node.SnapshotIndex}, log from {node.LogStart}");
    }

    /// <summary>
    /// Ready step 0, the driver's <see cref="ISnapshotPort.Install"/>: the received snapshot
    /// becomes this node's durable one (the driver then discards the log and swaps in the state
    /// machine returned). A crash may strike right after the snapshot is saved, before the log is
    /// discarded. Applied never goes backwards.
    /// </summary>
    public KvStore InstallSnapshot(SimNode node, SnapshotMetadata metadata, SimSnapshot snapshot)
    {
        if (snapshot.Index != metadata.Index || snapshot.Term != metadata.Term || !snapshot.Configuration.Equals(metadata.Configuration))
            Fail($"node {node.Id}: the snapshot data ({snapshot.Index}/{snapshot.Term} [{snapshot.Configuration}]) is not the one the core installs ({metadata.Index}/{metadata.Term} [{metadata.Configuration}])");
        if (snapshot.Index <= node.SnapshotIndex)
            Fail($"node {node.Id}: installing a snapshot at {snapshot.Index} over a newer one at {node.SnapshotIndex}");
        if (node.AppliedLog.Count > snapshot.Index)
            Fail($"node {node.Id} would go back from applied {node.AppliedLog.Count} to a snapshot at {snapshot.Index}");
        CheckSnapshotState(node, snapshot, "installed");
        node.Snapshot = snapshot;
        if (random.NextDouble() < Math.Max(CrashAfterPersist, CrashMidInstall))
        {
            CrashesMidInstall++;
            throw new SimulatedCrash();
        }
        SnapshotsInstalled++;
        // The server adopts the id of a snapshot's header when the core installs it.
        if (snapshot.ClusterId != 0) node.Driver!.ClusterId!.Identity.TryAdopt(snapshot.ClusterId);
        Trace?.Invoke($"{Now} node {node.Id} installed the snapshot at {snapshot.Index}/{snapshot.Term}");
        return node.LoadSnapshot(snapshot);
    }

    /// <summary>The sender's driver streams its durable snapshot; the network may lose it.</summary>
    public void SendSnapshot(Message message)
    {
        var sender = Nodes[message.From];
        sender.SentTerm = Math.Max(sender.SentTerm, message.Term);
        var snapshot = sender.Snapshot;
        if (snapshot is null || message.Snapshot is null || snapshot.Index != message.Snapshot.Index || snapshot.Term != message.Snapshot.Term
            || !snapshot.Configuration.Equals(message.Snapshot.Configuration))
            Fail($"node {message.From} sends a snapshot at {message.Snapshot?.Index} [{message.Snapshot?.Configuration}] but holds {snapshot?.Index} [{snapshot?.Configuration}]");
        long at = Now + random.Next(Config.MinDelay, Config.MaxDelay + 1) + random.Next(Config.SnapshotTransferSteps + 1);
        if (!linked[message.From, message.To] || random.NextDouble() < Loss || random.NextDouble() < SnapshotFailure)
        {
            TransferFailed(message.From, sender.Incarnation, message.To, at);
            return;
        }
        network.Enqueue(message with { SnapshotData = new Transfer(snapshot!, sender.Incarnation) }, (at, sequence++));
    }

    private void TransferFailed(int from, int incarnation, int to, long at)
    {
        TransfersFailed++;
        if (random.NextDouble() < Config.SilentSnapshotFailure) return; // the core must time it out
        reports.Enqueue(new Report(from, incarnation, to, false), (at, sequence++));
    }

    /// <summary>The transfer arrived: the receiving driver steps the metadata with the data's handle,
    /// and the sender learns that it succeeded (or, if the receiver is gone, that it failed).</summary>
    private void DeliverSnapshot(Message message)
    {
        var transfer = (Transfer)message.SnapshotData!;
        var node = Nodes[message.To];
        long reportAt = Now + random.Next(Config.MinDelay, Config.MaxDelay + 1);
        if (!linked[message.From, message.To] || !node.Alive)
        {
            TransferFailed(message.From, transfer.SenderIncarnation, message.To, reportAt);
            return;
        }
        Trace?.Invoke($"{Now} deliver Snapshot {message.From}->{message.To} t{message.Term} at {transfer.Snapshot.Index}/{transfer.Snapshot.Term}");
        node.Driver!.Receive([message with { SnapshotData = transfer.Snapshot }]);
        Observe(node);
        reports.Enqueue(new Report(message.From, transfer.SenderIncarnation, message.To, true), (reportAt, sequence++));
    }

    private void DeliverReports()
    {
        while (reports.TryPeek(out var report, out var at) && at.Time <= Now)
        {
            reports.Dequeue();
            var node = Nodes[report.Node];
            if (!node.Alive || node.Incarnation != report.Incarnation) continue;
            if (node.IsPaused(Now))
            {
                reports.Enqueue(report, (node.PausedUntil + 1, sequence++));
                continue;
            }
            node.Driver!.Handle(new SnapshotTransferEnded(report.Peer, report.Success));
            Observe(node);
        }
    }
}
