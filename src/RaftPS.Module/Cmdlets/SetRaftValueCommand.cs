using System.Management.Automation;
using System.Text;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>
/// Set-RaftValue: writes a value and returns once it is committed. Fed a pipeline, it gathers the
/// input into batches of up to 128 items (and 3 MiB), sends each batch as one SetMany call when it
/// is full and the rest at the end of input, keeps up to 8 batches in flight, and writes outputs
/// and errors in input order. -WhatIf/-Confirm are asked per item before it joins a batch.
/// With -IfRevision, -IfAbsent or -IfValue each item is a conditional write of its own (up to 128
/// in flight); a condition that does not hold is the non-terminating error RaftConflict. With
/// -TtlSec the command grants one lease (per connection) and attaches every key it writes to it.
/// </summary>
[Cmdlet(VerbsCommon.Set, "RaftValue", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low, DefaultParameterSetName = Always)]
[OutputType(typeof(RaftValue))]
public sealed class SetRaftValueCommand : RaftConnectedCmdlet
{
    private const string Always = "Always";
    private const string ByRevision = "IfRevision";
    private const string ByAbsence = "IfAbsent";
    private const string ByValue = "IfValue";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KeyCompleter))]
    public string Key { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string Value { get; set; } = "";

    /// <summary>Write only if the key's revision is this (0: only if it does not exist).</summary>
    [Parameter(Mandatory = true, ParameterSetName = ByRevision)]
    [ValidateRange(0, long.MaxValue)]
    public long IfRevision { get; set; }

    /// <summary>Write only if the key does not exist.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ByAbsence)]
    public SwitchParameter IfAbsent { get; set; }

    /// <summary>Write only if the key exists with this value.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ByValue)]
    [AllowEmptyString]
    public string IfValue { get; set; } = "";

    /// <summary>Attach the keys to a lease of this many seconds: they are deleted when it expires.</summary>
    [Parameter]
    [ValidateRange(1, 2592000)]
    public int TtlSec { get; set; }

    [Parameter]
    [RaftConnectionTransformation]
    public RaftConnection? Connection { get; set; }

    /// <summary>Output the written value.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override RaftConnection? ConnectionParameter => Connection;

    /// <summary>Items per SetMany call (the server takes up to 1000).</summary>
    internal const int BatchItems = 128;
    /// <summary>Bytes of keys and values per SetMany call (the server takes up to 4 MiB in all).</summary>
    internal const int BatchBytes = 3 << 20;

    private List<(string Key, string Value)> _batch = new();
    private int _batchBytes;
    private RaftConnection? _batchConnection;
    private long _batchLease;
    /// <summary>The lease of -TtlSec, per connection (granted at the first item).</summary>
    private readonly Dictionary<RaftConnection, long> _leases = new(ReferenceEqualityComparer.Instance);

    private bool Conditional => ParameterSetName != Always;

    /// <summary>Batches (each up to <see cref="BatchItems"/> writes), or single conditional writes, in flight.</summary>
    protected override int MaxInFlight => Conditional ? 128 : 8;

    protected override void ProcessRecord()
    {
        var connection = ResolveConnection();
        var key = Key;
        var value = Value ?? "";
        if (!ShouldProcess($"key '{key}' at {connection}", $"Set value '{Shorten(value)}'{ConditionText()}"))
            return;
        long lease = 0;
        if (TtlSec > 0 && !TryGetLease(connection, key, out lease))
            return;
        if (Conditional)
        {
            WriteConditional(connection, key, value, lease);
            return;
        }
        if (_batchConnection is not null && (!ReferenceEquals(connection, _batchConnection) || lease != _batchLease)) SendBatch();
        var bytes = Encoding.UTF8.GetByteCount(key) + Encoding.UTF8.GetByteCount(value) + 32;
        if (_batch.Count > 0 && _batchBytes + bytes > BatchBytes) SendBatch();
        _batchConnection = connection;
        _batchLease = lease;
        _batch.Add((key, value));
        _batchBytes += bytes;
        if (_batch.Count >= BatchItems) SendBatch();
    }

    protected override void EndProcessing()
    {
        SendBatch();
        DrainInFlight();
    }

    private string ConditionText() => ParameterSetName switch
    {
        ByRevision => $" if its revision is {IfRevision}",
        ByAbsence => " if it does not exist",
        ByValue => $" if its value is '{Shorten(IfValue)}'",
        _ => "",
    } + (TtlSec > 0 ? $", expiring in {TtlSec} s" : "");

    private WriteConditionSpec Condition() => ParameterSetName switch
    {
        ByRevision => WriteConditionSpec.IfRevision(IfRevision),
        ByAbsence => WriteConditionSpec.IfAbsent,
        _ => WriteConditionSpec.IfValue(IfValue ?? ""),
    };

    /// <summary>The lease of -TtlSec for this connection, granted on first use (its failure is the item's error).</summary>
    private bool TryGetLease(RaftConnection connection, string key, out long lease)
    {
        if (_leases.TryGetValue(connection, out lease)) return true;
        if (!TryCall(ct => CoordinationOperations.LeaseGrantAsync(connection, "Set-RaftValue", TtlSec, Timeout, Progress, ct), key, out lease))
            return false;
        _leases[connection] = lease;
        return true;
    }

    private void WriteConditional(RaftConnection connection, string key, string value, long lease)
    {
        var condition = Condition();
        var task = CoordinationOperations.WriteAsync(connection, "Set-RaftValue", false, key, value, condition, lease, Timeout, Progress, Cancellation);
        Enqueue(task, () =>
        {
            if (!task.IsCompletedSuccessfully)
            {
                WriteCallError(task, key);
                return;
            }
            var outcome = task.Result;
            if (!outcome.Succeeded)
            {
                WriteError(RaftErrors.ConflictRecord(CoordinationOperations.Conflict("Set-RaftValue", key, condition, outcome), condition.Kind == Protocol.CompareKind.CompareAbsent));
                return;
            }
            KeyHistory.Add(key);
            if (PassThru) WriteObject(new RaftValue(key, value, outcome.KeyRevision, 0, 0, lease));
        });
    }

    /// <summary>Sends the gathered items as one call; their outputs and errors come out in order once it completes.</summary>
    private void SendBatch()
    {
        if (_batch.Count == 0) return;
        var items = _batch;
        var lease = _batchLease;
        _batch = new List<(string Key, string Value)>(BatchItems);
        _batchBytes = 0;
        var task = RaftOperations.SetManyAsync(_batchConnection!, items, Timeout, Progress, Cancellation, lease);
        Enqueue(task, () =>
        {
            if (!task.IsCompletedSuccessfully)
            {
                foreach (var (key, _) in items) WriteCallError(task, key);
                return;
            }
            var outcomes = task.Result;
            for (var i = 0; i < items.Count; i++)
            {
                var (key, value) = items[i];
                if (outcomes[i].Error is { } error)
                {
                    WriteError(RaftErrors.FromException(error, key));
                    continue;
                }
                KeyHistory.Add(key);
                if (PassThru) WriteObject(new RaftValue(key, value, outcomes[i].Index, 0, 0, lease));
            }
        });
    }

    private static string Shorten(string value) => value.Length <= 40 ? value : value[..37] + "...";
}
