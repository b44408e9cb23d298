using System.Diagnostics;
using System.Management.Automation;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>
/// Base of the module's cmdlets: a cancellation token cancelled by Ctrl+C (StopProcessing),
/// waits that show Write-Progress when they last, and an ordered window of calls in flight.
/// </summary>
public abstract class RaftCmdlet : PSCmdlet, IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Queue<(Task Task, Action Complete)> _inFlight = new();
    private static int _nextActivityId = 0x5AF7;
    private readonly int _activityId = Interlocked.Increment(ref _nextActivityId);
    // Set by a continuation of the call the pipeline thread waits for (see WaitFor). Never
    // disposed: a continuation of an abandoned call may still set it after the cmdlet ends.
    private readonly ManualResetEventSlim _callCompleted = new(false);
    private Action? _signalCallCompleted;

    internal RetryProgress Progress { get; } = new();

    /// <summary>Cancelled when the user presses Ctrl+C or the pipeline stops.</summary>
    protected CancellationToken Cancellation => _stop.Token;

    /// <summary>Activity shown by Write-Progress while a call waits (retries, elections).</summary>
    protected virtual string ProgressActivity => $"{MyInvocation.MyCommand.Name}: waiting for the cluster";

    protected override void StopProcessing() => Cancel();

    private void Cancel()
    {
        _stop.Cancel();
    }

    /// <summary>Waits for a call on the pipeline thread, with progress after a second.</summary>
    internal T Await<T>(Task<T> task)
    {
        WaitWithProgress(task);
        try
        {
            return task.GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            throw new PipelineStoppedException();
        }
    }

    internal void WaitWithProgress(Task task) => WaitUntil(task, null, showProgress: true);

    /// <summary>
    /// Waits for a task on the pipeline thread until it completes (true) or the Stopwatch timestamp
    /// <paramref name="deadline"/> passes (false); Ctrl+C stops the pipeline. With
    /// <paramref name="showProgress"/>, a wait longer than a second shows Write-Progress.
    /// </summary>
    internal bool WaitUntil(Task task, long? deadline, bool showProgress)
    {
        if (task.IsCompleted) return true;
        var started = Stopwatch.GetTimestamp();
        var shown = false;
        var lastShown = TimeSpan.Zero;
        try
        {
            while (!WaitFor(task, 100))
            {
                if (deadline is { } end && Stopwatch.GetTimestamp() >= end && !_stop.IsCancellationRequested) return false;
                if (_stop.IsCancellationRequested)
                {
                    // Give the call a moment to see the cancellation, then stop regardless.
                    WaitFor(task, 1000);
                    throw new PipelineStoppedException();
                }
                var elapsed = Stopwatch.GetElapsedTime(started);
                if (showProgress && elapsed > TimeSpan.FromSeconds(1) && elapsed - lastShown > TimeSpan.FromMilliseconds(500))
                {
                    lastShown = elapsed;
                    shown = true;
                    WriteProgress(new ProgressRecord(_activityId, ProgressActivity,
                        $"{elapsed.TotalSeconds:0} s: {Progress.Status ?? "waiting for an answer"}"));
                }
            }
            return true;
        }
        finally
        {
            if (shown && !_stop.IsCancellationRequested)
            {
                try
                {
                    WriteProgress(new ProgressRecord(_activityId, ProgressActivity, "done") { RecordType = ProgressRecordType.Completed });
                }
                catch (PipelineStoppedException) { }
            }
        }
    }

    /// <summary>
    /// Blocks up to <paramref name="milliseconds"/> for a task; true once it is complete. Cheaper
    /// than the task's AsyncWaitHandle, which would give every task waited for an event of its
    /// own (and a finalizer): one reusable event, set by a continuation of the task.
    /// </summary>
    private bool WaitFor(Task task, int milliseconds)
    {
        if (task.IsCompleted) return true;
        _callCompleted.Reset();
        // A continuation left by an earlier wait may set the event early: the loop of the caller
        // then checks again and waits again.
        task.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_signalCallCompleted ??= _callCompleted.Set);
        _callCompleted.Wait(milliseconds);
        return task.IsCompleted;
    }

    /// <summary>How many calls a cmdlet fed by the pipeline keeps in flight.</summary>
    protected virtual int MaxInFlight => 128;

    /// <summary>
    /// Adds a call to the window of calls in flight; <paramref name="complete"/> runs on the
    /// pipeline thread once the call and every call before it are done, so outputs and errors come
    /// out in input order. Blocks while the window is full.
    /// </summary>
    internal void Enqueue(Task task, Action complete)
    {
        _inFlight.Enqueue((task, complete));
        while (_inFlight.Count > 0 && (_inFlight.Count >= MaxInFlight || _inFlight.Peek().Task.IsCompleted))
            CompleteOldest();
    }

    /// <summary>Completes every call in flight, in order.</summary>
    internal void DrainInFlight()
    {
        while (_inFlight.Count > 0) CompleteOldest();
    }

    private void CompleteOldest()
    {
        var (task, complete) = _inFlight.Peek();
        WaitWithProgress(task);
        _inFlight.Dequeue();
        if (task.IsCanceled && _stop.IsCancellationRequested) throw new PipelineStoppedException();
        complete();
    }

    /// <summary>Writes the error of a failed call, non-terminating, or stops on Ctrl+C.</summary>
    internal void WriteCallError(Task task, object? target)
    {
        var exception = task.Exception?.InnerException ?? new OperationCanceledException();
        if (exception is OperationCanceledException)
        {
            if (_stop.IsCancellationRequested) throw new PipelineStoppedException();
        }
        WriteError(RaftErrors.FromException(exception, target));
    }

    public void Dispose()
    {
        // The pipeline ended (maybe by an error with -ErrorAction Stop): abandon calls in flight.
        // The source is cancelled, not disposed: calls still winding down may look at its token.
        Cancel();
        GC.SuppressFinalize(this);
    }
}

/// <summary>Base of the cmdlets that talk to a node: -Connection (else the current one) and -TimeoutSec.</summary>
public abstract class RaftConnectedCmdlet : RaftCmdlet
{
    /// <summary>The -Connection parameter; each cmdlet declares it (some bind it from the pipeline).</summary>
    protected abstract RaftConnection? ConnectionParameter { get; }

    /// <summary>How long to keep retrying through the cluster's members before failing.</summary>
    [Parameter]
    [ValidateRange(1, 86400)]
    public int TimeoutSec { get; set; } = 10;

    internal TimeSpan Timeout => TimeSpan.FromSeconds(TimeoutSec);

    /// <summary>The connection to use; with none, the terminating RaftNotConnected error.</summary>
    protected RaftConnection ResolveConnection()
    {
        var connection = ConnectionParameter ?? CurrentConnection.Get();
        if (connection is null) ThrowTerminatingError(RaftErrors.NotConnectedRecord());
        return connection!;
    }

    /// <summary>Runs one call on the pipeline thread and returns its result, or writes its error.</summary>
    internal bool TryCall<T>(Func<CancellationToken, Task<T>> call, object? target, out T result)
    {
        try
        {
            result = Await(call(Cancellation));
            return true;
        }
        catch (RaftException e)
        {
            WriteError(RaftErrors.FromException(e, target));
            result = default!;
            return false;
        }
    }
}
