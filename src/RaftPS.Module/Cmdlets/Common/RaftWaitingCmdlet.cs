using System.Diagnostics;
using System.Threading.Channels;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>
/// Base of the cmdlets that wait for the cluster to change (Watch-RaftValue, Wait-RaftValue,
/// Lock-RaftKey): -TimeoutSec, when given, bounds the whole wait; without it they wait until they
/// are done or Ctrl+C. Each call they make meanwhile has the usual retry budget.
/// </summary>
public abstract class RaftWaitingCmdlet : RaftConnectedCmdlet
{
    /// <summary>The retry budget of each call made while waiting.</summary>
    internal static readonly TimeSpan CallBudget = TimeSpan.FromSeconds(10);
    /// <summary>How long a watch may find no node to serve it before it fails.</summary>
    internal static readonly TimeSpan ReconnectBudget = TimeSpan.FromSeconds(30);

    private long? _deadline;

    /// <summary>Starts the clock of -TimeoutSec (call at the start of each record).</summary>
    internal void StartClock() =>
        _deadline = MyInvocation.BoundParameters.ContainsKey(nameof(TimeoutSec))
            ? Stopwatch.GetTimestamp() + (long)(TimeoutSec * (double)Stopwatch.Frequency)
            : null;

    /// <summary>What remains of -TimeoutSec (null: no limit).</summary>
    internal TimeSpan? Remaining => _deadline is { } end ? TimeSpan.FromSeconds((double)(end - Stopwatch.GetTimestamp()) / Stopwatch.Frequency) : null;

    internal bool TimedOut => _deadline is { } end && Stopwatch.GetTimestamp() >= end;

    /// <summary>
    /// The next change of <paramref name="watch"/>: true with it; false once -TimeoutSec passed or the
    /// watch ended (cancelled); its failure (RaftException) is thrown; Ctrl+C stops the pipeline.
    /// </summary>
    internal bool TryTake(WatchStream watch, bool showProgress, out RaftChange change)
    {
        var reader = watch.Changes;
        while (true)
        {
            if (reader.TryRead(out change!)) return true;
            if (TimedOut) return false;
            var ready = reader.WaitToReadAsync(Cancellation).AsTask();
            if (!WaitUntil(ready, _deadline, showProgress)) return false;
            if (ready.IsCanceled) return false;
            if (ready.IsFaulted) throw ready.Exception!.InnerException!;
            if (!ready.Result)
            {
                if (reader.Completion.IsFaulted) throw reader.Completion.Exception!.InnerException!;
                return false;
            }
        }
    }

    /// <summary>Ends a watch and waits for its stream to close.</summary>
    internal static void Close(WatchStream watch) => watch.DisposeAsync().AsTask().GetAwaiter().GetResult();
}
