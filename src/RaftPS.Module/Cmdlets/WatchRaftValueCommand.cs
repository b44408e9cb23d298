using System.Management.Automation;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>
/// Watch-RaftValue: streams the changes (Key, Value, Revision, Kind) of a key, or of the keys a
/// wildcard pattern matches, down the pipeline in revision order, each once, until -Count changes
/// were output, -TimeoutSec passed, or Ctrl+C. It starts after the current revision (read
/// linearizably), or at -FromRevision; a node that fails or stops is replaced by another, resuming
/// after the last change received. The stream feeds a bounded queue that the pipeline thread drains.
/// </summary>
[Cmdlet(VerbsCommon.Watch, "RaftValue")]
[OutputType(typeof(RaftChange))]
public sealed class WatchRaftValueCommand : RaftWaitingCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KeyCompleter))]
    public string Key { get; set; } = "";

    /// <summary>The first revision to output (with the changes before it in the history the nodes keep).</summary>
    [Parameter]
    [ValidateRange(1, long.MaxValue)]
    public long FromRevision { get; set; }

    /// <summary>Stop after this many changes.</summary>
    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    public int Count { get; set; }

    [Parameter]
    [RaftConnectionTransformation]
    public RaftConnection? Connection { get; set; }

    protected override RaftConnection? ConnectionParameter => Connection;

    protected override void ProcessRecord()
    {
        StartClock();
        var connection = ResolveConnection();
        var pattern = Key;
        var wildcard = WildcardPattern.ContainsWildcardCharacters(pattern) ? new WildcardPattern(pattern, WildcardOptions.None) : null;
        var watched = wildcard is null ? WildcardPattern.Unescape(pattern) : GetRaftValueCommand.LiteralPrefix(pattern);

        var start = FromRevision;
        if (start == 0)
        {
            if (!TryCall(ct => CoordinationOperations.CurrentRevisionAsync(connection, "Watch-RaftValue", watched, CallBudget, Progress, ct), pattern, out var now))
                return;
            start = now + 1;
        }
        WriteVerbose($"Watching {pattern} from revision {start}.");

        var watch = WatchStream.Start(connection, "Watch-RaftValue", watched, prefix: wildcard is not null, start, ReconnectBudget, Progress, Cancellation);
        try
        {
            var output = 0;
            while (TryTake(watch, showProgress: false, out var change))
            {
                if (wildcard is not null && !wildcard.IsMatch(change.Key)) continue;
                if (change.Kind == RaftChangeKind.Put) KeyHistory.Add(change.Key);
                WriteObject(change);
                if (Count > 0 && ++output >= Count) return;
            }
        }
        catch (RaftException e)
        {
            WriteError(RaftErrors.FromException(e, pattern));
        }
        finally
        {
            Close(watch);
        }
    }
}
