using System.Management.Automation;

namespace RaftPS.Cmdlets;

/// <summary>Connect-RaftNode: a connection to a node; unless -NotDefault, the runspace's current one.</summary>
[Cmdlet(VerbsCommunications.Connect, "RaftNode")]
[OutputType(typeof(RaftConnection))]
public sealed class ConnectRaftNodeCommand : PSCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string Address { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, 65535)]
    public int Port { get; set; }

    [Parameter]
    public SwitchParameter NotDefault { get; set; }

    protected override void ProcessRecord()
    {
        var connection = new RaftConnection(Address, Port);
        if (!NotDefault) CurrentConnection.Set(connection);
        WriteVerbose($"Connected to {connection}{(NotDefault ? "" : " (now the current connection)")}.");
        WriteObject(connection);
    }
}
