using System.Management.Automation;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>
/// Set-RaftValue: writes a value and returns once it is committed. Fed a pipeline, it keeps up to
/// 128 writes in flight and writes outputs and errors in input order.
/// </summary>
[Cmdlet(VerbsCommon.Set, "RaftValue", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(RaftValue))]
public sealed class SetRaftValueCommand : RaftConnectedCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KeyCompleter))]
    public string Key { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string Value { get; set; } = "";

    [Parameter]
    [RaftConnectionTransformation]
    public RaftConnection? Connection { get; set; }

    /// <summary>Output the written value.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override RaftConnection? ConnectionParameter => Connection;

    protected override void ProcessRecord()
    {
        var connection = ResolveConnection();
        var key = Key;
        var value = Value ?? "";
        if (!ShouldProcess($"key '{key}' at {connection}", $"Set value '{Shorten(value)}'"))
            return;
        var task = RaftOperations.SetAsync(connection, key, value, Timeout, Progress, Cancellation);
        Enqueue(task, () =>
        {
            if (task.IsCompletedSuccessfully)
            {
                KeyHistory.Add(key);
                if (PassThru) WriteObject(new RaftValue(key, value));
            }
            else
            {
                WriteCallError(task, key);
            }
        });
    }

    protected override void EndProcessing() => DrainInFlight();

    private static string Shorten(string value) => value.Length <= 40 ? value : value[..37] + "...";
}
