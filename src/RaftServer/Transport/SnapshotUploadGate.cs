namespace RaftServer.Transport;

/// <summary>
/// The bounds on snapshot uploads into this node, shared by all InstallSnapshot calls: the largest
/// snapshot taken (checked against the header's total length before any byte is stored) and at
/// most one upload in progress per sending peer (docs/security.md, "Snapshot uploads"). Thread-safe.
/// </summary>
public sealed class SnapshotUploadGate(long maxBytes)
{
    private readonly HashSet<int> _inProgress = new();
    private readonly Lock _gate = new();

    /// <summary>The largest snapshot file accepted (--max-snapshot-bytes).</summary>
    public long MaxBytes { get; } = maxBytes > 0 ? maxBytes : throw new ArgumentOutOfRangeException(nameof(maxBytes));

    /// <summary>Refusals worth a log line, at most once a minute per sender and reason.</summary>
    public LogLimiter Refusals { get; } = new(TimeSpan.FromMinutes(1));

    /// <summary>Starts an upload from <paramref name="peer"/>; false when one from it is in progress.</summary>
    public bool TryEnter(int peer)
    {
        lock (_gate) return _inProgress.Add(peer);
    }

    public void Exit(int peer)
    {
        lock (_gate) _inProgress.Remove(peer);
    }
}
