using System.Globalization;
using System.Management.Automation;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>
/// Suspend-RaftNode: the node behaves as if paused for the period (answers nothing, sends nothing),
/// then resumes. Returns as soon as the node has accepted the suspension.
/// </summary>
[Cmdlet(VerbsLifecycle.Suspend, "RaftNode", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class SuspendRaftNodeCommand : RaftConnectedCmdlet
{
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateRange(0.001, 86400.0)]
    public double Seconds { get; set; }

    [Parameter(ValueFromPipeline = true)]
    [RaftConnectionTransformation]
    public RaftConnection? Connection { get; set; }

    protected override RaftConnection? ConnectionParameter => Connection;

    protected override void ProcessRecord()
    {
        var connection = ResolveConnection();
        var period = Seconds.ToString("0.###", CultureInfo.InvariantCulture);
        if (!ShouldProcess($"node {connection}", $"Suspend for {period} s"))
            return;
        TryCall(async ct => { await RaftOperations.SuspendAsync(connection, Seconds, Timeout, Progress, ct).ConfigureAwait(false); return true; },
            connection, out _);
    }
}
