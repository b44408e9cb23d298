namespace RaftServer.Transport;

/// <summary>
/// The bounds on snapshot uploads into this node, shared by all InstallSnapshot calls: the largest
/// snapshot taken (checked against the header's total length before any byte is stored) and at
/// most one upload in progress per sending peer (docs/security.md, "Snapshot uploads"): a newer
/// upload from a peer cancels the one in progress, so a stream that went silent (a half-open
/// connection after a partition, or a sender that stopped on purpose) cannot hold the peer's place
/// and keep its real snapshots out. Thread-safe.
/// </summary>
public sealed class SnapshotUploadGate(long maxBytes)
{
    private readonly Dictionary<int, CancellationTokenSource> _inProgress = new();
    private readonly Lock _gate = new();

    /// <summary>The largest snapshot file accepted (--max-snapshot-bytes).</summary>
    public long MaxBytes { get; } = maxBytes > 0 ? maxBytes : throw new ArgumentOutOfRangeException(nameof(maxBytes));

    /// <summary>Refusals worth a log line, at most once a minute per sender and reason.</summary>
    public LogLimiter Refusals { get; } = new(TimeSpan.FromMinutes(1));

    /// <summary>Starts an upload from <paramref name="peer"/>, cancelling the one from it in progress
    /// (its token is cancelled); dispose the returned place when the upload ends.</summary>
    public Place Enter(int peer)
    {
        var cts = new CancellationTokenSource();
        CancellationTokenSource? older;
        lock (_gate)
        {
            _inProgress.Remove(peer, out older);
            _inProgress[peer] = cts;
        }
        older?.Cancel();
        return new Place(this, peer, cts);
    }

    private void Exit(int peer, CancellationTokenSource cts)
    {
        lock (_gate)
            if (_inProgress.TryGetValue(peer, out var current) && current == cts)
                _inProgress.Remove(peer);
        cts.Dispose();
    }

    /// <summary>An upload's place: <see cref="Cancelled"/> fires when a newer upload from the same peer starts.</summary>
    public sealed class Place(SnapshotUploadGate gate, int peer, CancellationTokenSource cts) : IDisposable
    {
        public CancellationToken Cancelled { get; } = cts.Token;

        public void Dispose() => gate.Exit(peer, cts);
    }
}
