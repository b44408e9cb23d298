using System.Management.Automation;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>
/// Get-RaftValue: the values of keys (linearizable reads). A missing key is a non-terminating
/// RaftKeyNotFound error; a key with wildcards lists the matching keys page by page (Range), with
/// no error when none match.
/// </summary>
[Cmdlet(VerbsCommon.Get, "RaftValue")]
[OutputType(typeof(RaftValue))]
public sealed class GetRaftValueCommand : RaftConnectedCmdlet
{
    private const int PageSize = 1000;

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KeyCompleter))]
    public string[] Key { get; set; } = [];

    [Parameter]
    [RaftConnectionTransformation]
    public RaftConnection? Connection { get; set; }

    protected override RaftConnection? ConnectionParameter => Connection;

    protected override void ProcessRecord()
    {
        var connection = ResolveConnection();
        foreach (var key in Key)
        {
            if (WildcardPattern.ContainsWildcardCharacters(key))
            {
                DrainInFlight();
                List(connection, key);
                continue;
            }
            var literal = WildcardPattern.Unescape(key);
            var task = RaftOperations.GetAsync(connection, literal, Timeout, Progress, Cancellation);
            Enqueue(task, () =>
            {
                if (!task.IsCompletedSuccessfully)
                {
                    WriteCallError(task, literal);
                }
                else if (task.Result is { } value)
                {
                    KeyHistory.Add(literal);
                    WriteObject(value);
                }
                else
                {
                    WriteError(RaftErrors.KeyNotFoundRecord(literal));
                }
            });
        }
    }

    protected override void EndProcessing() => DrainInFlight();

    /// <summary>Lists the keys matching a pattern: a Range over its literal prefix, page by page.</summary>
    private void List(RaftConnection connection, string pattern)
    {
        // Keys are case-sensitive, as the server orders and serves them.
        var wildcard = new WildcardPattern(pattern, WildcardOptions.None);
        var prefix = LiteralPrefix(pattern);
        var after = "";
        while (true)
        {
            var page = after;
            if (!TryCall(ct => RaftOperations.RangeAsync(connection, prefix, page, PageSize, Timeout, Progress, ct), pattern, out var result))
                return;
            foreach (var item in result.Items)
            {
                if (!wildcard.IsMatch(item.Key)) continue;
                KeyHistory.Add(item.Key);
                WriteObject(item);
            }
            if (!result.More || result.Items.Count == 0) return;
            after = result.Items[^1].Key;
        }
    }

    /// <summary>The characters before the first unescaped wildcard, with escapes removed.</summary>
    internal static string LiteralPrefix(string pattern)
    {
        var prefix = new System.Text.StringBuilder();
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            if (c == '`' && i + 1 < pattern.Length) { prefix.Append(pattern[++i]); continue; }
            if (c is '*' or '?' or '[') break;
            prefix.Append(c);
        }
        return prefix.ToString();
    }
}
