using System.Management.Automation;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>
/// Remove-RaftValue: deletes keys; a missing key is a non-terminating RaftKeyNotFound error. With
/// -IfRevision or -IfValue a key is deleted only under that condition; when it does not hold the
/// key stays and the error is RaftConflict (InvalidOperation) naming its current revision.
/// </summary>
[Cmdlet(VerbsCommon.Remove, "RaftValue", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = Always)]
[OutputType(typeof(void))]
public sealed class RemoveRaftValueCommand : RaftConnectedCmdlet
{
    private const string Always = "Always";
    private const string ByRevision = "IfRevision";
    private const string ByValue = "IfValue";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KeyCompleter))]
    public string[] Key { get; set; } = [];

    /// <summary>Delete only if the key's revision is this.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ByRevision)]
    [ValidateRange(1, long.MaxValue)]
    public long IfRevision { get; set; }

    /// <summary>Delete only if the key's value is this.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ByValue)]
    [AllowEmptyString]
    public string IfValue { get; set; } = "";

    [Parameter]
    [RaftConnectionTransformation]
    public RaftConnection? Connection { get; set; }

    protected override RaftConnection? ConnectionParameter => Connection;

    protected override void ProcessRecord()
    {
        var connection = ResolveConnection();
        foreach (var key in Key)
        {
            if (!ShouldProcess($"key '{key}' at {connection}", ParameterSetName switch
            {
                ByRevision => $"Remove value if its revision is {IfRevision}",
                ByValue => "Remove value if its value matches",
                _ => "Remove value",
            }))
                continue;
            if (ParameterSetName == Always)
                Remove(connection, key);
            else
                RemoveIf(connection, key);
        }
    }

    private void Remove(RaftConnection connection, string key)
    {
        var task = RaftOperations.DeleteAsync(connection, key, Timeout, Progress, Cancellation);
        Enqueue(task, () =>
        {
            if (!task.IsCompletedSuccessfully)
                WriteCallError(task, key);
            else if (!task.Result)
                WriteError(RaftErrors.KeyNotFoundRecord(key));
            else
                KeyHistory.Remove(key);
        });
    }

    private void RemoveIf(RaftConnection connection, string key)
    {
        var condition = ParameterSetName == ByRevision ? WriteConditionSpec.IfRevision(IfRevision) : WriteConditionSpec.IfValue(IfValue ?? "");
        var task = CoordinationOperations.WriteAsync(connection, "Remove-RaftValue", true, key, "", condition, 0, Timeout, Progress, Cancellation);
        Enqueue(task, () =>
        {
            if (!task.IsCompletedSuccessfully)
                WriteCallError(task, key);
            else if (!task.Result.Succeeded)
                WriteError(RaftErrors.ConflictRecord(CoordinationOperations.Conflict("Remove-RaftValue", key, condition, task.Result), ifAbsent: false));
            else
                KeyHistory.Remove(key);
        });
    }

    protected override void EndProcessing() => DrainInFlight();
}
