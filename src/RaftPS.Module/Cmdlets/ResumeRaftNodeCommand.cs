using System.Management.Automation;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>Resume-RaftNode: ends the connected node's suspension (Suspend-RaftNode) now; it resumes from its data directory.</summary>
[Cmdlet(VerbsLifecycle.Resume, "RaftNode", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(void))]
public sealed class ResumeRaftNodeCommand : RaftConnectedCmdlet
{
    [Parameter(ValueFromPipeline = true)]
    [RaftConnectionTransformation]
    public RaftConnection? Connection { get; set; }

    protected override RaftConnection? ConnectionParameter => Connection;

    protected override void ProcessRecord()
    {
        var connection = ResolveConnection();
        if (!ShouldProcess($"node {connection}", "Resume"))
            return;
        TryCall(async ct => { await RaftOperations.ResumeAsync(connection, Timeout, Progress, ct).ConfigureAwait(false); return true; }, connection, out _);
    }
}
