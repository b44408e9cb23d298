using System.Management.Automation;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>
/// Get-RaftStatus: one node's role, term, leader, indexes, members and (on a leader) peers'
/// progress; with -All, one row per member of the cluster (each asked itself, all at once; a
/// member that does not answer is a row that says so).
/// </summary>
[Cmdlet(VerbsCommon.Get, "RaftStatus", DefaultParameterSetName = OneSet)]
[OutputType(typeof(RaftStatus), ParameterSetName = [OneSet])]
[OutputType(typeof(RaftNodeStatus), ParameterSetName = [AllSet])]
public sealed class GetRaftStatusCommand : RaftConnectedCmdlet
{
    private const string OneSet = "One", AllSet = "All";
    /// <summary>How long -All waits for each member at most (a member cut off by the network).</summary>
    private static readonly TimeSpan MemberTimeout = TimeSpan.FromSeconds(2);

    [Parameter(ValueFromPipeline = true)]
    [RaftConnectionTransformation]
    public RaftConnection? Connection { get; set; }

    /// <summary>Every member's status, one row each (the members as the connected node knows them).</summary>
    [Parameter(Mandatory = true, ParameterSetName = AllSet)]
    public SwitchParameter All { get; set; }

    protected override RaftConnection? ConnectionParameter => Connection;

    protected override void ProcessRecord()
    {
        var connection = ResolveConnection();
        if (All)
        {
            var perMember = Timeout < MemberTimeout ? Timeout : MemberTimeout;
            WriteObject(Await(new ClusterPoll(connection).PollAsync(perMember, Cancellation)), enumerateCollection: true);
            return;
        }
        if (TryCall(ct => RaftOperations.StatusAsync(connection, Timeout, Progress, ct), connection, out var status))
            WriteObject(status);
    }
}
