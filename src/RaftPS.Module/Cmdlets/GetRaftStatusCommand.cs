using System.Management.Automation;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>Get-RaftStatus: one node's role, term, leader, indexes, members and (on a leader) peers' progress.</summary>
[Cmdlet(VerbsCommon.Get, "RaftStatus")]
[OutputType(typeof(RaftStatus))]
public sealed class GetRaftStatusCommand : RaftConnectedCmdlet
{
    [Parameter(ValueFromPipeline = true)]
    [RaftConnectionTransformation]
    public RaftConnection? Connection { get; set; }

    protected override RaftConnection? ConnectionParameter => Connection;

    protected override void ProcessRecord()
    {
        var connection = ResolveConnection();
        if (TryCall(ct => RaftOperations.StatusAsync(connection, Timeout, Progress, ct), connection, out var status))
            WriteObject(status);
    }
}
