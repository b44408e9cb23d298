using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using RaftServer.Transport;

namespace RaftServer.Tests.Transport;

/// <summary>
/// Wall-clock steps of 100 ms: run alone, not beside the parallel unit tests, which on 2 cores once
/// delayed its continuations by 2 s (a clean-clone CI run, 2026-12-07) where alone it takes 0.4 s.
/// </summary>
[Collection(Integration.ProcessCollection.Name)]
public sealed class PeerSocketConnectorTests
{
    /// <summary>
    /// A listener whose accept queue is full drops new SYNs (Linux), as a lossy link loses them: the
    /// kernel would send the SYN again only after 1 s; the connector starts a new attempt after its
    /// connect timeout, which the listener takes once it has room.
    /// </summary>
    [SkippableFact]
    public async Task A_connection_whose_SYN_is_dropped_is_attempted_again_after_the_connect_timeout_not_the_kernels_second()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "the full accept queue's dropped SYNs are Linux's");
        using var listener = await FullBacklogListener.OpenAsync();
        var timings = new PeerLinkTimings(TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(50));
        var connector = new PeerSocketConnector(timings, NullLogger.Instance);
        var sw = Stopwatch.StartNew();
        using var overall = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var connecting = connector.ConnectAsync(new DnsEndPoint("127.0.0.1", listener.Port), overall.Token);
        await Task.Delay(150); // the first attempt's SYN is dropped; then make room
        listener.Drain();
        using var connected = await connecting;
        Assert.True(connected.Connected);
        // The kernel's own retry of the first SYN comes at 1 s.
        Assert.True(sw.Elapsed < TimeSpan.FromMilliseconds(900), $"connected after {sw.ElapsedMilliseconds} ms");
    }
}
