using System.Management.Automation;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>
/// Remove-RaftNode: removes members from the cluster's configuration, one change at a time,
/// each committed before the next. Removing the leader hands leadership to another voter first.
/// The removed node's process keeps running (not a member, it does nothing); stop it yourself.
/// An id is never added again: a replacement joins under a new id.
/// </summary>
[Cmdlet(VerbsCommon.Remove, "RaftNode", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(void))]
public sealed class RemoveRaftNodeCommand : RaftConnectedCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(MemberIdCompleter))]
    [ValidateRange(0, int.MaxValue)]
    public int[] Id { get; set; } = [];

    [Parameter]
    [RaftConnectionTransformation]
    public RaftConnection? Connection { get; set; }

    protected override RaftConnection? ConnectionParameter => Connection;

    protected override void ProcessRecord()
    {
        var connection = ResolveConnection();
        foreach (var id in Id)
        {
            if (!ShouldProcess($"node {id} of the cluster of {connection}", "Remove from the cluster"))
                continue;
            TryCall(ct => RaftOperations.RemoveMemberAsync(connection, id, Timeout, Progress, ct), id, out _);
        }
    }
}
