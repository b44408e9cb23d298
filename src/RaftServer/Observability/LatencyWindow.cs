namespace RaftServer.Observability;

/// <summary>
/// The last <see cref="Capacity"/> durations of something (the WAL's fsyncs), for a percentile
/// the Status call can report without a metrics backend. One writer (the node loop) records;
/// any thread may ask for a percentile (it copies the window under the same lock).
/// </summary>
public sealed class LatencyWindow
{
    public const int Capacity = 1024;
    private readonly double[] _seconds = new double[Capacity];
    private readonly Lock _gate = new();
    private int _next;
    private int _count;

    public void Record(double seconds)
    {
        lock (_gate)
        {
            _seconds[_next] = seconds;
            _next = (_next + 1) % Capacity;
            if (_count < Capacity) _count++;
        }
    }

    /// <summary>The <paramref name="quantile"/> (0..1) of the window, nearest rank; 0 when empty.</summary>
    public double Percentile(double quantile)
    {
        double[] copy;
        lock (_gate)
        {
            if (_count == 0) return 0;
            copy = _seconds[.._count];
        }
        Array.Sort(copy);
        var rank = (int)Math.Ceiling(quantile * copy.Length) - 1;
        return copy[Math.Clamp(rank, 0, copy.Length - 1)];
    }
}
