namespace RaftPS.Client;

/// <summary>What a call is waiting for, for the cmdlet to show in Write-Progress.</summary>
internal sealed class RetryProgress
{
    private volatile string? _status;

    public string? Status { get => _status; set => _status = value; }
}
