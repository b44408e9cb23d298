using System.Management.Automation.Runspaces;
using System.Runtime.CompilerServices;

namespace RaftPS.Cmdlets;

/// <summary>
/// The current connection of each runspace: Connect-RaftNode sets it, Disconnect-RaftNode clears it.
/// Per runspace, so ForEach-Object -Parallel workers each connect their own.
/// </summary>
internal static class CurrentConnection
{
    private sealed class Holder { public RaftConnection? Connection; }

    private static readonly ConditionalWeakTable<Runspace, Holder> ByRunspace = new();

    public static RaftConnection? Get() =>
        Runspace.DefaultRunspace is { } runspace && ByRunspace.TryGetValue(runspace, out var holder) ? holder.Connection : null;

    public static void Set(RaftConnection? connection)
    {
        if (Runspace.DefaultRunspace is not { } runspace) return;
        ByRunspace.GetOrCreateValue(runspace).Connection = connection;
    }
}
