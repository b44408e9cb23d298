using System.Diagnostics;
using System.Globalization;
using System.Management.Automation;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>
/// Watch-RaftCluster: the whole cluster in the terminal, redrawn every -RefreshSec (default 1 s):
/// each member's role, term, commit and applied index, lag, time since its last heartbeat,
/// writes/s and reads/s it answered, fsync p99; unreachable and suspended members in red. Ends on
/// Ctrl+C, on q, or after -Count frames. When the host is not an interactive console (output or
/// input redirected, another host), each frame is a plain table written to the information stream
/// (as Write-Host does), one after the other.
/// </summary>
[Cmdlet(VerbsCommon.Watch, "RaftCluster")]
[OutputType(typeof(void))]
public sealed class WatchRaftClusterCommand : RaftConnectedCmdlet
{
    private const string Home = "\u001b[H", EraseBelow = "\u001b[J", HideCursor = "\u001b[?25l", ShowCursor = "\u001b[?25h";

    [Parameter]
    [ValidateRange(0.1, 3600.0)]
    public double RefreshSec { get; set; } = 1;

    /// <summary>Stop after this many frames (default: until Ctrl+C or q).</summary>
    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    public int Count { get; set; }

    [Parameter(ValueFromPipeline = true)]
    [RaftConnectionTransformation]
    public RaftConnection? Connection { get; set; }

    protected override RaftConnection? ConnectionParameter => Connection;

    protected override void ProcessRecord()
    {
        var connection = ResolveConnection();
        var interactive = Host.Name == "ConsoleHost" && !Console.IsOutputRedirected && !Console.IsInputRedirected;
        var refresh = TimeSpan.FromSeconds(RefreshSec);
        // A member that does not answer costs at most this: the frame after it is still on time.
        var perNode = TimeSpan.FromSeconds(Math.Min(Math.Max(RefreshSec * 0.8, 0.1), TimeoutSec));
        var poll = new ClusterPoll(connection);
        Dictionary<string, (RaftNodeStatus Row, long At)> previous = new();
        if (interactive) Host.UI.Write(HideCursor + Home + EraseBelow);
        try
        {
            for (var frame = 1; ; frame++)
            {
                var started = Stopwatch.GetTimestamp();
                var rows = Await(poll.PollAsync(perNode, Cancellation));
                previous = AddRates(rows, previous, started);
                var title = $"RaftPS cluster via {new RaftEndpoint(connection.Address, connection.Port)} at {DateTime.Now.ToString("HH:mm:ss", CultureInfo.InvariantCulture)}, " +
                    $"every {RefreshSec.ToString("0.###", CultureInfo.InvariantCulture)} s" + (interactive ? " (q or Ctrl+C to quit)" : "");
                var text = ClusterViewText.Render(rows, title, color: interactive);
                if (interactive) Host.UI.Write(Home + text + EraseBelow);
                else WriteInformation(new HostInformationMessage { Message = text.TrimEnd('\n') + "\n" }, ["PSHOST"]);
                if (Count > 0 && frame >= Count) return;
                if (WaitOrQuit(refresh - Stopwatch.GetElapsedTime(started), interactive)) return;
            }
        }
        finally
        {
            if (interactive) Host.UI.Write(ShowCursor);
        }
    }

    /// <summary>Reads/s and writes/s of each member since its previous row.</summary>
    private static Dictionary<string, (RaftNodeStatus, long)> AddRates(RaftNodeStatus[] rows, Dictionary<string, (RaftNodeStatus Row, long At)> previous, long now)
    {
        var next = new Dictionary<string, (RaftNodeStatus, long)>();
        foreach (var row in rows)
        {
            if (row.Health != RaftNodeHealth.Ok) continue;
            if (previous.TryGetValue(row.Endpoint, out var before) && before.Row.Term is not null)
            {
                var seconds = Stopwatch.GetElapsedTime(before.At, now).TotalSeconds;
                // A restarted node's totals start again from 0: no rate for that frame.
                if (seconds > 0 && row.WritesTotal >= before.Row.WritesTotal && row.ReadsTotal >= before.Row.ReadsTotal)
                {
                    row.WritesPerSecond = (row.WritesTotal - before.Row.WritesTotal) / seconds;
                    row.ReadsPerSecond = (row.ReadsTotal - before.Row.ReadsTotal) / seconds;
                }
            }
            next[row.Endpoint] = (row, now);
        }
        return next;
    }

    /// <summary>Waits until the next frame is due; true when q was pressed (Ctrl+C stops the pipeline).</summary>
    private bool WaitOrQuit(TimeSpan wait, bool interactive)
    {
        var until = Stopwatch.GetTimestamp() + (long)(Math.Max(0, wait.TotalSeconds) * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < until)
        {
            if (Cancellation.IsCancellationRequested) throw new PipelineStoppedException();
            if (interactive)
            {
                while (Console.KeyAvailable)
                    if (Console.ReadKey(intercept: true).KeyChar is 'q' or 'Q') return true;
            }
            Cancellation.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(interactive ? 25 : 100));
        }
        return false;
    }
}
