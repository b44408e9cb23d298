using System.Management.Automation.Runspaces;
using System.Runtime.CompilerServices;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>
/// The locks each runspace holds: when the runspace closes (or breaks) they are released, so their
/// keep-alives stop and the next waiter gets the lock at once rather than after the lease expires.
/// (When the whole process ends, its keep-alives end with it and the leases expire.)
/// </summary>
internal static class LockRegistry
{
    private sealed class Held
    {
        public readonly List<RaftLock> Locks = new();
    }

    private static readonly ConditionalWeakTable<Runspace, Held> ByRunspace = new();

    public static void Track(RaftLock held)
    {
        if (Runspace.DefaultRunspace is not { } runspace) return;
        var created = false;
        var entry = ByRunspace.GetValue(runspace, _ =>
        {
            created = true;
            return new Held();
        });
        if (created) runspace.StateChanged += OnStateChanged;
        lock (entry) entry.Locks.Add(held);
    }

    public static void Forget(RaftLock held)
    {
        if (Runspace.DefaultRunspace is not { } runspace || !ByRunspace.TryGetValue(runspace, out var entry)) return;
        lock (entry) entry.Locks.Remove(held);
    }

    private static void OnStateChanged(object? sender, RunspaceStateEventArgs e)
    {
        if (sender is not Runspace runspace || e.RunspaceStateInfo.State is not (RunspaceState.Closing or RunspaceState.Closed or RunspaceState.Broken)) return;
        if (!ByRunspace.TryGetValue(runspace, out var entry)) return;
        List<RaftLock> locks;
        lock (entry)
        {
            locks = entry.Locks.ToList();
            entry.Locks.Clear();
        }
        foreach (var held in locks)
        {
            // Best effort, off the closing runspace's thread: a lease not revoked expires on its own.
            _ = Task.Run(async () =>
            {
                try
                {
                    using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                    await RaftMutex.UnlockAsync(held, TimeSpan.FromSeconds(5), limit.Token).ConfigureAwait(false);
                }
                catch (Exception)
                {
                }
            });
        }
    }
}
