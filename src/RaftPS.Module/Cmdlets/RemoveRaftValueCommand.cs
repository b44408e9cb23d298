using System.Management.Automation;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>Remove-RaftValue: deletes keys; a missing key is a non-terminating RaftKeyNotFound error.</summary>
[Cmdlet(VerbsCommon.Remove, "RaftValue", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class RemoveRaftValueCommand : RaftConnectedCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KeyCompleter))]
    public string[] Key { get; set; } = [];

    [Parameter]
    [RaftConnectionTransformation]
    public RaftConnection? Connection { get; set; }

    protected override RaftConnection? ConnectionParameter => Connection;

    protected override void ProcessRecord()
    {
        var connection = ResolveConnection();
        foreach (var key in Key)
        {
            if (!ShouldProcess($"key '{key}' at {connection}", "Remove value"))
                continue;
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
    }

    protected override void EndProcessing() => DrainInFlight();
}
