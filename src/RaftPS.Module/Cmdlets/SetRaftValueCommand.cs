using System.Management.Automation;
using System.Text;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>
/// Set-RaftValue: writes a value and returns once it is committed. Fed a pipeline, it gathers the
/// input into batches of up to 128 items (and 3 MiB), sends each batch as one SetMany call when it
/// is full and the rest at the end of input, keeps up to 8 batches in flight, and writes outputs
/// and errors in input order. -WhatIf/-Confirm are asked per item before it joins a batch.
/// </summary>
[Cmdlet(VerbsCommon.Set, "RaftValue", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(RaftValue))]
public sealed class SetRaftValueCommand : RaftConnectedCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KeyCompleter))]
    public string Key { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string Value { get; set; } = "";

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

    /// <summary>Batches in flight (each up to <see cref="BatchItems"/> writes).</summary>
    protected override int MaxInFlight => 8;

    protected override void ProcessRecord()
    {
        var connection = ResolveConnection();
        var key = Key;
        var value = Value ?? "";
        if (!ShouldProcess($"key '{key}' at {connection}", $"Set value '{Shorten(value)}'"))
            return;
        if (_batchConnection is not null && !ReferenceEquals(connection, _batchConnection)) SendBatch();
        var bytes = Encoding.UTF8.GetByteCount(key) + Encoding.UTF8.GetByteCount(value) + 32;
        if (_batch.Count > 0 && _batchBytes + bytes > BatchBytes) SendBatch();
        _batchConnection = connection;
        _batch.Add((key, value));
        _batchBytes += bytes;
        if (_batch.Count >= BatchItems) SendBatch();
    }

    protected override void EndProcessing()
    {
        SendBatch();
        DrainInFlight();
    }

    /// <summary>Sends the gathered items as one call; their outputs and errors come out in order once it completes.</summary>
    private void SendBatch()
    {
        if (_batch.Count == 0) return;
        var items = _batch;
        _batch = new List<(string Key, string Value)>(BatchItems);
        _batchBytes = 0;
        var task = RaftOperations.SetManyAsync(_batchConnection!, items, Timeout, Progress, Cancellation);
        Enqueue(task, () =>
        {
            if (!task.IsCompletedSuccessfully)
            {
                foreach (var (key, _) in items) WriteCallError(task, key);
                return;
            }
            var errors = task.Result;
            for (var i = 0; i < items.Count; i++)
            {
                var (key, value) = items[i];
                if (errors[i] is { } error)
                {
                    WriteError(RaftErrors.FromException(error, key));
                    continue;
                }
                KeyHistory.Add(key);
                if (PassThru) WriteObject(new RaftValue(key, value));
            }
        });
    }

    private static string Shorten(string value) => value.Length <= 40 ? value : value[..37] + "...";
}
