using System.Diagnostics;

namespace RaftPS.Client;

/// <summary>
/// A lease this process keeps alive (model: etcd's concurrency.Session): granted, then renewed at
/// the leader every third of its time to live, in the background, until stopped. The lease is
/// counted as held until the time to live has passed since the last renewal that succeeded was
/// <em>sent</em> (the leader renews from when it confirmed the request, which is later), so this
/// side gives it up no later than the leader may. Once lost, it stays lost: <see cref="Lost"/>
/// is cancelled and the holder (a lock) must stop relying on it.
/// </summary>
internal sealed class KeptLease : IAsyncDisposable
{
    private readonly RaftConnection _connection;
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _lost = new();
    private long _validUntil;
    private Task _keepAlive = Task.CompletedTask;
    private int _stopped;

    private KeptLease(RaftConnection connection, long id, long ttlSeconds, long sentAt)
    {
        _connection = connection;
        Id = id;
        TtlSeconds = ttlSeconds;
        _validUntil = sentAt + Stopwatch.Frequency * ttlSeconds;
    }

    public long Id { get; }
    public long TtlSeconds { get; }
    /// <summary>Cancelled when the lease is lost (expired, revoked, or no renewal succeeded in time).</summary>
    public CancellationToken Lost => _lost.Token;
    public bool IsLost => _lost.IsCancellationRequested;
    public string? LostReason { get; private set; }

    /// <summary>Grants a lease and starts keeping it alive.</summary>
    public static async Task<KeptLease> GrantAsync(RaftConnection connection, string operation, long ttlSeconds, TimeSpan timeout, RetryProgress? progress, CancellationToken cancellation)
    {
        var sent = Stopwatch.GetTimestamp();
        var id = await CoordinationOperations.LeaseGrantAsync(connection, operation, ttlSeconds, timeout, progress, cancellation).ConfigureAwait(false);
        var lease = new KeptLease(connection, id, ttlSeconds, sent);
        lease._keepAlive = Task.Run(lease.KeepAliveAsync);
        return lease;
    }

    private TimeSpan Remaining => TimeSpan.FromSeconds((double)(Volatile.Read(ref _validUntil) - Stopwatch.GetTimestamp()) / Stopwatch.Frequency);

    private async Task KeepAliveAsync()
    {
        var period = TimeSpan.FromSeconds(TtlSeconds / 3.0);
        var token = _stop.Token;
        var wait = period;
        try
        {
            while (true)
            {
                await Task.Delay(wait, token).ConfigureAwait(false);
                wait = period;
                var sent = Stopwatch.GetTimestamp();
                // Retried through the members for as long as the lease may still be valid.
                var budget = Remaining;
                if (budget <= TimeSpan.Zero)
                {
                    SetLost($"no keep-alive of lease {Id} succeeded within its time to live of {TtlSeconds} s");
                    return;
                }
                try
                {
                    var ttl = await CoordinationOperations.LeaseKeepAliveAsync(_connection, Id, budget, token).ConfigureAwait(false);
                    if (ttl is null)
                    {
                        SetLost($"lease {Id} expired or was revoked");
                        return;
                    }
                    Volatile.Write(ref _validUntil, sent + Stopwatch.Frequency * ttl.Value);
                }
                catch (RaftException)
                {
                    // Nothing served it in time: try again soon while the lease may still be valid.
                    wait = TimeSpan.FromMilliseconds(200);
                }
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
    }

    private void SetLost(string reason)
    {
        LostReason ??= reason;
        _lost.Cancel();
    }

    /// <summary>Stops the keep-alives and, with <paramref name="revoke"/>, revokes the lease (its keys
    /// are deleted); false when the lease was already gone.</summary>
    public async Task<bool> StopAsync(bool revoke, TimeSpan timeout, CancellationToken cancellation)
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 0)
        {
            _stop.Cancel();
            await _keepAlive.ConfigureAwait(false);
        }
        if (!revoke) return !IsLost;
        var found = await CoordinationOperations.LeaseRevokeAsync(_connection, "Unlock-RaftKey", Id, timeout, cancellation).ConfigureAwait(false);
        SetLost($"lease {Id} was revoked");
        return found;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 0)
        {
            _stop.Cancel();
            await _keepAlive.ConfigureAwait(false);
        }
    }
}
