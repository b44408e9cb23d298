using System.Management.Automation;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>
/// Lock-RaftKey: waits until this session holds the lock of the given name and outputs it (Name,
/// Key, Owner, Revision: a fencing token that grows with each holder). The lock is held by a lease
/// of -TtlSec seconds that the module keeps alive in the background until Unlock-RaftKey or the end
/// of the runspace; a script that dies loses the lock once its lease expires. Waiters are served in
/// the order they asked (etcd's recipe). After -TimeoutSec the wait ends with RaftTimeout and leaves
/// nothing behind.
/// </summary>
[Cmdlet(VerbsCommon.Lock, "RaftKey")]
[OutputType(typeof(RaftLock))]
public sealed class LockRaftKeyCommand : RaftWaitingCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ValidateLength(1, 900)]
    [ArgumentCompleter(typeof(LockNameCompleter))]
    public string Name { get; set; } = "";

    /// <summary>The lease's time to live: how long a holder that stops keeping it alive keeps the lock.</summary>
    [Parameter]
    [ValidateRange(1, 86400)]
    public int TtlSec { get; set; } = 10;

    [Parameter]
    [RaftConnectionTransformation]
    public RaftConnection? Connection { get; set; }

    protected override RaftConnection? ConnectionParameter => Connection;

    protected override string ProgressActivity => $"Lock-RaftKey: waiting for the lock '{Name}'";

    /// <summary>Who holds a lock, as its key's value: this machine and process.</summary>
    internal static string Owner => $"{Environment.MachineName}/{Environment.ProcessId}";

    protected override void ProcessRecord()
    {
        StartClock();
        var connection = ResolveConnection();
        var name = Name;
        Progress.Status = null;
        var task = RaftMutex.LockAsync(connection, name, TtlSec, Owner, Remaining, Progress, Cancellation);
        try
        {
            var held = Await(task);
            LockRegistry.Track(held);
            LockNames.Add(name);
            WriteVerbose($"Holding '{name}' as {held.Key} at revision {held.Revision}.");
            WriteObject(held);
        }
        catch (RaftException e)
        {
            WriteError(RaftErrors.FromException(e, name));
        }
    }
}
