using System.Diagnostics;
using System.IO;
using System.Net.Http;
using System.Threading.Channels;
using Grpc.Core;
using RaftPS.Protocol;

namespace RaftPS.Client;

/// <summary>
/// One watch as a client keeps it: a server stream from any node, resumed on another node from
/// the last revision received + 1 whenever a stream breaks (the node died, stopped, was suspended),
/// so the changes come in revision order with no gap and no duplicate. A node that no longer has
/// the revisions wanted (compacted) is left for another; when none has them the watch fails with
/// <see cref="RaftErrorKind.Compacted"/>: the caller reads the state again and watches from there.
/// Changes go into a bounded channel that the caller drains (on PowerShell's pipeline thread);
/// when it falls behind, the stream waits, and the server ends a watcher that falls out of its
/// window (reported the same way).
/// </summary>
internal sealed class WatchStream : IAsyncDisposable
{
    /// <summary>Changes received and not yet taken at most.</summary>
    public const int Buffer = 4096;
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(1);

    private readonly Channel<RaftChange> _changes = Channel.CreateBounded<RaftChange>(new BoundedChannelOptions(Buffer) { SingleReader = true, SingleWriter = true });
    private readonly CancellationTokenSource _stop;
    private readonly Task _run;
    private long _next;

    private WatchStream(CancellationToken cancellation, long start)
    {
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        _next = start;
        _run = Task.CompletedTask;
    }

    private WatchStream(RaftConnection connection, string operation, string key, bool prefix, long startRevision, TimeSpan reconnectBudget, RetryProgress? progress, CancellationToken cancellation)
        : this(cancellation, startRevision)
    {
        _run = Task.Run(() => RunAsync(connection, operation, key, prefix, reconnectBudget, progress, _stop.Token));
    }

    /// <summary>Starts watching <paramref name="key"/> (or every key under it, with <paramref name="prefix"/>) from <paramref name="startRevision"/> (at least 1).</summary>
    /// <param name="reconnectBudget">How long the watch may go without any node serving it before it fails.</param>
    public static WatchStream Start(RaftConnection connection, string operation, string key, bool prefix, long startRevision, TimeSpan reconnectBudget, RetryProgress? progress, CancellationToken cancellation)
    {
        if (startRevision < 1) throw new ArgumentOutOfRangeException(nameof(startRevision));
        return new WatchStream(connection, operation, key, prefix, startRevision, reconnectBudget, progress, cancellation);
    }

    /// <summary>The changes, in revision order; completed (with the failure, if any) when the watch ends.</summary>
    public ChannelReader<RaftChange> Changes => _changes.Reader;

    /// <summary>Every change before this revision has been received.</summary>
    public long NextRevision => Volatile.Read(ref _next);

    private async Task RunAsync(RaftConnection connection, string operation, string key, bool prefix, TimeSpan reconnectBudget, RetryProgress? progress, CancellationToken cancellation)
    {
        Exception? failure = null;
        try
        {
            await WatchAsync(connection, operation, key, prefix, reconnectBudget, progress, cancellation).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            failure = e;
        }
        _changes.Writer.TryComplete(failure);
    }

    private async Task WatchAsync(RaftConnection connection, string operation, string key, bool prefix, TimeSpan reconnectBudget, RetryProgress? progress, CancellationToken cancellation)
    {
        var what = RaftCaller.Describe(operation, prefix ? key + "*" : key);
        var origin = connection.Endpoint;
        var target = origin;
        var backoff = FirstBackoff;
        long? failingSince = null;
        var lastProblem = "";
        var triedThisRound = new HashSet<RaftEndpoint>();
        var compactedAt = new HashSet<RaftEndpoint>();
        long compactRevision = 0;
        // Resuming elsewhere needs the other members: learn them if no call has yet.
        if (!ClusterDirectory.Knows(origin)) await RaftCaller.LearnMembersAsync(origin, origin, connection.Security).ConfigureAwait(false);

        while (true)
        {
            cancellation.ThrowIfCancellationRequested();
            try
            {
                var client = ChannelCache.Get(target, connection.Security);
                using var call = client.Watch(new WatchRequest { Key = key, Prefix = prefix, StartRevision = NextRevision }, cancellationToken: cancellation);
                var stream = call.ResponseStream;
                while (await stream.MoveNext(cancellation).ConfigureAwait(false))
                {
                    var reply = stream.Current;
                    if (reply.Canceled)
                    {
                        lastProblem = $"node {target} ended the watch: {reply.CancelDetail}";
                        if (reply.CancelReason is WatchCancelReason.WatchCompacted or WatchCancelReason.WatchTooSlow)
                        {
                            // Another node may still have the revisions wanted; when none has, re-read.
                            compactedAt.Add(target);
                            compactRevision = Math.Max(compactRevision, reply.CompactRevision);
                            if (ClusterDirectory.Candidates(origin).All(compactedAt.Contains))
                                throw new RaftException(RaftErrorKind.Compacted,
                                    $"{what}: revision {NextRevision} is no longer in the history the nodes keep ({reply.CancelDetail}); read the current values again and watch from their revision + 1.")
                                { CompactRevision = compactRevision };
                        }
                        break;
                    }
                    compactedAt.Clear();
                    failingSince = null;
                    backoff = FirstBackoff;
                    triedThisRound.Clear();
                    foreach (var e in reply.Events)
                    {
                        // A resumed stream starts at NextRevision, so nothing comes twice; checked anyway.
                        if (e.ModRevision < NextRevision) continue;
                        await _changes.Writer.WriteAsync(ToChange(e), cancellation).ConfigureAwait(false);
                    }
                    if (reply.Revision + 1 > NextRevision) Volatile.Write(ref _next, reply.Revision + 1);
                }
                if (lastProblem.Length == 0) lastProblem = $"node {target} closed the watch";
            }
            catch (RpcException e) when (cancellation.IsCancellationRequested)
            {
                throw new OperationCanceledException($"{what} was cancelled", e, cancellation);
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.InvalidArgument)
            {
                throw new RaftException(RaftErrorKind.InvalidArgument, $"{what}: {e.Status.Detail}", e);
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unimplemented)
            {
                throw new RaftException(RaftErrorKind.ServerError, $"{what}: node {target} does not serve watches (an older RaftServer)", e);
            }
            catch (RpcException e)
            {
                if (await TlsDiagnosis.ClassifyAsync(e, connection, target, what).ConfigureAwait(false) is { } security) throw security;
                lastProblem = $"node {target}: {e.StatusCode}: {e.Status.Detail}";
            }
            catch (Exception e) when (e is HttpRequestException or IOException)
            {
                if (await TlsDiagnosis.ClassifyAsync(e, connection, target, what).ConfigureAwait(false) is { } security) throw security;
                lastProblem = $"node {target} is unreachable ({e.Message})";
            }

            // Resume elsewhere: any member serves a watch; after a round where none did, back off.
            failingSince ??= Stopwatch.GetTimestamp();
            if (Stopwatch.GetElapsedTime(failingSince.Value) > reconnectBudget)
                throw new RaftException(RaftErrorKind.Unreachable,
                    $"{what}: no node of the cluster served the watch for {reconnectBudget.TotalSeconds:0} s. Last problem: {lastProblem}.");
            triedThisRound.Add(target);
            target = RaftCaller.NextMember(origin, target);
            if (progress is not null) progress.Status = $"{lastProblem}; resuming at revision {NextRevision} on {target}";
            if (!triedThisRound.Contains(target)) continue;
            triedThisRound.Clear();
            await Task.Delay(backoff, cancellation).ConfigureAwait(false);
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
        }
    }

    private static RaftChange ToChange(WatchEvent e) => e.Kind == EventKind.EventPut
        ? new RaftChange(e.Key, RaftOperations.Decode(e.Value), e.ModRevision, RaftChangeKind.Put, e.CreateRevision, e.Version, e.Lease)
        : new RaftChange(e.Key, "", e.ModRevision, RaftChangeKind.Delete, 0, 0, 0);

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        try
        {
            await _run.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Its outcome went into the channel.
        }
        _stop.Dispose();
    }
}
