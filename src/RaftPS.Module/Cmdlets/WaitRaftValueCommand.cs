using System.Management.Automation;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>
/// Wait-RaftValue: returns once a key exists (the default), has a given value (-Value) or does not
/// exist (-Absent), and outputs the value that satisfied it (nothing for -Absent). It reads the key
/// (linearizably) and, while the condition does not hold, watches it from that read's revision, so
/// no change in between is missed; when the history it needs is gone it reads again. After
/// -TimeoutSec it gives up with the non-terminating error RaftTimeout.
/// </summary>
[Cmdlet(VerbsLifecycle.Wait, "RaftValue", DefaultParameterSetName = Exists)]
[OutputType(typeof(RaftValue))]
public sealed class WaitRaftValueCommand : RaftWaitingCmdlet
{
    private const string Exists = "Exists";
    private const string HasValue = "Value";
    private const string IsAbsent = "Absent";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KeyCompleter))]
    public string Key { get; set; } = "";

    /// <summary>Wait until the key has this value.</summary>
    [Parameter(Mandatory = true, ParameterSetName = HasValue)]
    [AllowEmptyString]
    public string Value { get; set; } = "";

    /// <summary>Wait until the key does not exist.</summary>
    [Parameter(Mandatory = true, ParameterSetName = IsAbsent)]
    public SwitchParameter Absent { get; set; }

    [Parameter]
    [RaftConnectionTransformation]
    public RaftConnection? Connection { get; set; }

    protected override RaftConnection? ConnectionParameter => Connection;

    protected override string ProgressActivity => $"Wait-RaftValue: waiting until '{Key}' {Describe()}";

    private string Describe() => ParameterSetName switch
    {
        HasValue => $"has the value '{Value}'",
        IsAbsent => "does not exist",
        _ => "exists",
    };

    private bool Satisfied(RaftValue? current) => ParameterSetName switch
    {
        HasValue => current is not null && current.Value == (Value ?? ""),
        IsAbsent => current is null,
        _ => current is not null,
    };

    protected override void ProcessRecord()
    {
        StartClock();
        var connection = ResolveConnection();
        var key = Key;
        while (true)
        {
            if (!TryCall(ct => RaftOperations.GetAtAsync(connection, "Wait-RaftValue", key, CallBudget, Progress, ct), key, out var read))
                return;
            if (Satisfied(read.Value))
            {
                Done(read.Value);
                return;
            }
            Progress.Status = $"'{key}' {(read.Value is null ? "does not exist" : $"is '{read.Value.Value}'")} at revision {read.Revision}";
            var watch = WatchStream.Start(connection, "Wait-RaftValue", key, prefix: false, read.Revision + 1, ReconnectBudget, Progress, Cancellation);
            try
            {
                while (TryTake(watch, showProgress: true, out var change))
                {
                    var current = change.Kind == RaftChangeKind.Put
                        ? new RaftValue(change.Key, change.Value, change.Revision, change.CreateRevision, change.Version, change.Lease)
                        : null;
                    if (!Satisfied(current)) continue;
                    Done(current);
                    return;
                }
                var still = ParameterSetName switch
                {
                    HasValue => $"'{key}' still does not have the value '{Value}'",
                    IsAbsent => $"'{key}' still exists",
                    _ => $"'{key}' still does not exist",
                };
                WriteError(new ErrorRecord(new RaftException(RaftErrorKind.Timeout, $"Wait-RaftValue: {still} after {TimeoutSec} s."),
                    RaftErrors.Timeout, ErrorCategory.OperationTimeout, key));
                return;
            }
            catch (RaftException e) when (e.Kind == RaftErrorKind.Compacted)
            {
                // The history it needed is gone: read the key again.
            }
            catch (RaftException e)
            {
                WriteError(RaftErrors.FromException(e, key));
                return;
            }
            finally
            {
                Close(watch);
            }
        }
    }

    private void Done(RaftValue? value)
    {
        if (value is null) return;
        KeyHistory.Add(value.Key);
        WriteObject(value);
    }
}
