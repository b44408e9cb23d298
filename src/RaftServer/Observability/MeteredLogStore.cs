using System.Diagnostics;
using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.Storage;

namespace RaftServer.Observability;

/// <summary>The driver's log port with each save timed and its bytes counted (<see cref="NodeMetrics.WalSaved"/>).</summary>
public sealed class MeteredLogStore(ILogStore inner, NodeMetrics metrics) : ILogStore
{
    public HardState HardState => inner.HardState;
    public long SizeBytes => inner.SizeBytes;

    public void Save(HardState? hardState, IReadOnlyList<Entry> entries, bool sync)
    {
        var started = Stopwatch.GetTimestamp();
        inner.Save(hardState, entries, sync);
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        long bytes = hardState is null ? 0 : WalRecord.HardStateRecordSize;
        for (var i = 0; i < entries.Count; i++) bytes += WalRecord.EntrySize(entries[i]);
        metrics.WalSaved(seconds, bytes, sync);
    }

    public void Reset(long snapshotIndex) => inner.Reset(snapshotIndex);
}
