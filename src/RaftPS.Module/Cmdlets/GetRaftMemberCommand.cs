using System.Management.Automation;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>Get-RaftMember: the cluster's members (voters and learners) as the leader sees them, with how far each is behind.</summary>
[Cmdlet(VerbsCommon.Get, "RaftMember")]
[OutputType(typeof(RaftMember))]
public sealed class GetRaftMemberCommand : RaftConnectedCmdlet
{
    /// <summary>Only these members; an id that is not a member is a non-terminating RaftMemberNotFound.</summary>
    [Parameter(Position = 0)]
    [ArgumentCompleter(typeof(MemberIdCompleter))]
    public int[]? Id { get; set; }

    [Parameter(ValueFromPipeline = true)]
    [RaftConnectionTransformation]
    public RaftConnection? Connection { get; set; }

    protected override RaftConnection? ConnectionParameter => Connection;

    protected override void ProcessRecord()
    {
        var connection = ResolveConnection();
        if (!TryCall(ct => RaftOperations.ListMembersAsync(connection, Timeout, Progress, ct), connection, out var members))
            return;
        if (Id is null)
        {
            WriteObject(members, enumerateCollection: true);
            return;
        }
        foreach (var id in Id)
        {
            if (members.FirstOrDefault(m => m.Id == id) is { } member) WriteObject(member);
            else WriteError(new ErrorRecord(new ItemNotFoundException($"Node {id} is not a member of the cluster (members: {string.Join(", ", members.Select(m => m.Id))})."),
                RaftErrors.MemberNotFound, ErrorCategory.ObjectNotFound, id));
        }
    }
}
