using System.Management.Automation;

namespace RaftPS.Cmdlets;

[Cmdlet(VerbsCommunications.Connect, "RaftNode")]
[OutputType(typeof(RaftConnection))]
public sealed class ConnectRaftNodeCommand : PSCmdlet
{
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Address { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1)]
    [ValidateRange(1, 65535)]
    public int Port { get; set; }

    [Parameter]
    public SwitchParameter NotDefault { get; set; }

    protected override void ProcessRecord()
    {
        WriteObject(new RaftConnection(Address, Port));
    }
}
