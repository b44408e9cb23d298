using System.Management.Automation;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>
/// Move-RaftLeader (etcdctl's move-leader): the leader brings a voter's log up to date and hands
/// leadership to it; writes pause for the moment it takes (the module retries them). Outputs the
/// new leader.
/// </summary>
[Cmdlet(VerbsCommon.Move, "RaftLeader", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(RaftLeader))]
public sealed class MoveRaftLeaderCommand : RaftConnectedCmdlet
{
    /// <summary>The voter to hand leadership to; without it, the most up-to-date one.</summary>
    [Parameter(Position = 0)]
    [ArgumentCompleter(typeof(MemberIdCompleter))]
    [ValidateRange(0, int.MaxValue)]
    public int? To { get; set; }

    [Parameter(ValueFromPipeline = true)]
    [RaftConnectionTransformation]
    public RaftConnection? Connection { get; set; }

    protected override RaftConnection? ConnectionParameter => Connection;

    protected override void ProcessRecord()
    {
        var connection = ResolveConnection();
        if (!ShouldProcess($"the cluster of {connection}", To is { } to ? $"Move the leadership to node {to}" : "Move the leadership to the most up-to-date voter"))
            return;
        if (TryCall(ct => RaftOperations.TransferLeadershipAsync(connection, To, Timeout, Progress, ct), To, out var leader))
            WriteObject(leader);
    }
}
