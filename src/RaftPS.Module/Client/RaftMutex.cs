using System.Diagnostics;
using System.Text.RegularExpressions;

namespace RaftPS.Client;

/// <summary>
/// etcd's lock recipe (client/v3/concurrency/mutex.go) on this store: every contender writes the
/// key "name/lease id" attached to its own kept-alive lease, only if it is absent; the revision that
/// created it is its place in the queue. The contender whose key has the lowest create revision
/// holds the lock; every other one watches the key just before its own (the next lower create
/// revision) until it is deleted (released, or its lease expired), then looks again. So waiters
/// are served in the order they came, each wakes only for its predecessor, and a holder that dies
/// loses the lock when its lease expires.
/// </summary>
internal static partial class RaftMutex
{
    /// <summary>The budget of each call made while waiting (retries through the members).</summary>
    public static readonly TimeSpan CallBudget = TimeSpan.FromSeconds(10);

    [GeneratedRegex("^[0-9a-f]{16}$")]
    private static partial Regex LeaseSuffix();

    public static string KeyFor(string name, long leaseId) => $"{name}/{leaseId:x16}";

    /// <summary>Acquires the lock <paramref name="name"/>, waiting at most <paramref name="wait"/> (null: as long as it takes).</summary>
    /// <exception cref="RaftException">Timeout (not acquired in time: nothing is left behind), LockLost (the lease was lost while waiting), or a failed call.</exception>
    public static async Task<RaftLock> LockAsync(RaftConnection connection, string name, long ttlSeconds, string owner, TimeSpan? wait,
        RetryProgress? progress, CancellationToken cancellation)
    {
        await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        var started = Stopwatch.GetTimestamp();
        var lease = await KeptLease.GrantAsync(connection, "Lock-RaftKey", ttlSeconds, CallBudget, progress, cancellation).ConfigureAwait(false);
        var key = KeyFor(name, lease.Id);
        try
        {
            var put = await CoordinationOperations.WriteAsync(connection, "Lock-RaftKey", false, key, owner, WriteConditionSpec.IfAbsent, lease.Id,
                CallBudget, progress, cancellation).ConfigureAwait(false);
            if (!put.Succeeded)
                throw new RaftException(RaftErrorKind.ServerError, $"Lock-RaftKey '{name}': the key {key} of this new lease exists already (revision {put.KeyRevision})");
            var mine = put.KeyRevision;

            while (true)
            {
                ThrowIfLost(lease, name);
                var (waiters, revision) = await WaitersAsync(connection, name, progress, cancellation).ConfigureAwait(false);
                if (!waiters.Any(w => w.Key == key))
                {
                    ThrowIfLost(lease, name);
                    throw new RaftException(RaftErrorKind.LockLost, $"Lock-RaftKey '{name}': the lock's key {key} disappeared while waiting (its lease expired or was revoked)");
                }
                var before = waiters.Where(w => w.CreateRevision < mine).MaxBy(w => w.CreateRevision);
                if (before is null)
                    return new RaftLock(name, key, owner, mine, lease, connection);
                if (progress is not null) progress.Status = $"waiting for {before.Key} (held by {before.Value}) to let go of '{name}'";
                await WaitForDeleteAsync(connection, name, before.Key, revision + 1, Remaining(started, wait), lease, progress, cancellation).ConfigureAwait(false);
            }
        }
        catch
        {
            // Not acquired (timeout, Ctrl+C, a failure): leave no key behind to block the others.
            try
            {
                using var cleanup = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await lease.StopAsync(revoke: true, TimeSpan.FromSeconds(5), cleanup.Token).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // The lease expires on its own.
            }
            throw;
        }
    }

    private static TimeSpan? Remaining(long started, TimeSpan? wait) => wait - Stopwatch.GetElapsedTime(started);

    private static void ThrowIfLost(KeptLease lease, string name)
    {
        if (lease.IsLost)
            throw new RaftException(RaftErrorKind.LockLost, $"Lock-RaftKey '{name}': the lock's lease was lost while waiting ({lease.LostReason})");
    }

    /// <summary>The contenders' keys of the lock (name/16 hex digits; other keys under the name are not
    /// contenders), read linearizably, and the revision they were read at.</summary>
    private static async Task<(List<RaftValue> Waiters, long Revision)> WaitersAsync(RaftConnection connection, string name, RetryProgress? progress, CancellationToken cancellation)
    {
        var prefix = name + "/";
        var waiters = new List<RaftValue>();
        var after = "";
        long revision = 0;
        while (true)
        {
            var page = await RaftOperations.RangeAsync(connection, prefix, after, 1000, CallBudget, progress, cancellation, "Lock-RaftKey").ConfigureAwait(false);
            revision = revision == 0 ? page.Revision : revision;
            waiters.AddRange(page.Items.Where(i => LeaseSuffix().IsMatch(i.Key.AsSpan(prefix.Length))));
            if (!page.More || page.Items.Count == 0) return (waiters, revision);
            after = page.Items[^1].Key;
        }
    }

    /// <summary>Until <paramref name="key"/> is deleted at a revision from <paramref name="from"/> on
    /// (or the revisions needed were compacted: the caller looks again).</summary>
    private static async Task WaitForDeleteAsync(RaftConnection connection, string name, string key, long from, TimeSpan? wait, KeptLease lease,
        RetryProgress? progress, CancellationToken cancellation)
    {
        if (wait is { } w && w <= TimeSpan.Zero) throw Timeout(name);
        using var scope = CancellationTokenSource.CreateLinkedTokenSource(cancellation, lease.Lost);
        if (wait is { } limit) scope.CancelAfter(limit);
        var watch = WatchStream.Start(connection, "Lock-RaftKey", key, prefix: false, from, CallBudget * 3, progress, scope.Token);
        await using (watch.ConfigureAwait(false))
        {
            try
            {
                await foreach (var change in watch.Changes.ReadAllAsync(scope.Token).ConfigureAwait(false))
                    if (change.Kind == RaftChangeKind.Delete) return;
            }
            catch (RaftException e) when (e.Kind == RaftErrorKind.Compacted)
            {
                return;
            }
            catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
            {
                ThrowIfLost(lease, name);
                throw Timeout(name);
            }
            // The watch ended by itself (it does only on a failure, rethrown above); look again.
        }
    }

    private static RaftException Timeout(string name) =>
        new(RaftErrorKind.Timeout, $"Lock-RaftKey '{name}': the lock was not acquired within the time given; another holder still has it.");

    /// <summary>Releases the lock: revokes its lease, which deletes its key (waking the next waiter).
    /// False when the lease was already gone (the lock had been lost).</summary>
    public static async Task<bool> UnlockAsync(RaftLock held, TimeSpan timeout, CancellationToken cancellation)
    {
        await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        var wasHeld = held.IsHeld;
        held.Released = true;
        var found = await held.Lease.StopAsync(revoke: true, timeout, cancellation).ConfigureAwait(false);
        return found && wasHeld;
    }
}
