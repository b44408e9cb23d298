using System.Management.Automation;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>Unlock-RaftKey: releases locks from Lock-RaftKey (their leases are revoked, which wakes the next waiter).</summary>
[Cmdlet(VerbsCommon.Unlock, "RaftKey", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(void))]
public sealed class UnlockRaftKeyCommand : RaftCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
    [ValidateNotNull]
    public RaftLock[] Lock { get; set; } = [];

    protected override void ProcessRecord()
    {
        foreach (var held in Lock)
        {
            if (held.Released)
            {
                WriteVerbose($"'{held.Name}' ({held.Key}) was already released.");
                continue;
            }
            if (!ShouldProcess($"lock '{held.Name}' ({held.Key})", "Release")) continue;
            var lostBefore = held.LostReason;
            var task = RaftMutex.UnlockAsync(held, RaftWaitingCmdlet.CallBudget, Cancellation);
            try
            {
                var wasHeld = Await(task);
                LockRegistry.Forget(held);
                if (!wasHeld)
                {
                    WriteError(new ErrorRecord(
                        new RaftException(RaftErrorKind.LockLost, $"Unlock-RaftKey: the lock '{held.Name}' ({held.Key}) had been lost before it was released ({lostBefore ?? "its lease expired"}); another holder may have had it meanwhile."),
                        RaftErrors.LockLost, ErrorCategory.InvalidOperation, held));
                }
            }
            catch (RaftException e)
            {
                WriteError(RaftErrors.FromException(e, held));
            }
        }
    }
}
