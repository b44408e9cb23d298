using System.Management.Automation;

namespace RaftPS.Cmdlets;

/// <summary>Disconnect-RaftNode: clears the runspace's current connection.</summary>
[Cmdlet(VerbsCommunications.Disconnect, "RaftNode")]
[OutputType(typeof(void))]
public sealed class DisconnectRaftNodeCommand : PSCmdlet
{
    /// <summary>The connection to forget; the current connection is cleared when it is this one.</summary>
    [Parameter(ValueFromPipeline = true)]
    [RaftConnectionTransformation]
    public RaftConnection? Connection { get; set; }

    protected override void ProcessRecord()
    {
        var current = CurrentConnection.Get();
        if (Connection is null && current is null)
            ThrowTerminatingError(RaftErrors.NotConnectedRecord());
        if (Connection is null || ReferenceEquals(Connection, current)
            || (current is not null && current.Address.Equals(Connection.Address, StringComparison.OrdinalIgnoreCase) && current.Port == Connection.Port))
        {
            CurrentConnection.Set(null);
            WriteVerbose($"Disconnected from {current}.");
        }
    }
}
