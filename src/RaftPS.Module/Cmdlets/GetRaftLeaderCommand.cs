using System.Management.Automation;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>Get-RaftLeader: the cluster's leader (Id, Address, Port, Term) as a node knows it.</summary>
[Cmdlet(VerbsCommon.Get, "RaftLeader")]
[OutputType(typeof(RaftLeader))]
public sealed class GetRaftLeaderCommand : RaftConnectedCmdlet
{
    [Parameter(ValueFromPipeline = true)]
    [RaftConnectionTransformation]
    public RaftConnection? Connection { get; set; }

    protected override RaftConnection? ConnectionParameter => Connection;

    protected override void ProcessRecord()
    {
        var connection = ResolveConnection();
        if (TryCall(ct => RaftOperations.GetLeaderAsync(connection, Timeout, Progress, ct), connection, out var leader))
            WriteObject(leader);
    }
}
