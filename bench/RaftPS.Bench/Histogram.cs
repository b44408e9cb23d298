using System.Diagnostics;
using System.Numerics;

namespace RaftPS.Bench;

/// <summary>
/// A log-linear latency histogram in the manner of HdrHistogram: values below 256 units are
/// exact, above that each power of two is split into 128 buckets (relative error under 0.8 %).
/// One per thread of the client (Driver), so recording is a few instructions with no sharing and no allocation.
/// The unit is 0.1 µs.
/// </summary>
sealed class Histogram
{
    const int SubBits = 7;
    const int Sub = 1 << SubBits;
    const int Octaves = 48;
    public const double UnitsPerMs = 10_000.0;
    static readonly double TicksToUnits = 10_000_000.0 / Stopwatch.Frequency;

    readonly long[] _counts = new long[2 * Sub + Octaves * Sub];
    public long Count;
    public long Max;
    public long Sum;

    public void RecordTicks(long ticks) => Record((long)(ticks * TicksToUnits));

    public void Record(long units)
    {
        if (units < 0) units = 0;
        _counts[Index(units)]++;
        Count++;
        Sum += units;
        if (units > Max) Max = units;
    }

    static int Index(long v)
    {
        if (v < 2 * Sub) return (int)v;
        int msb = 63 - BitOperations.LeadingZeroCount((ulong)v);
        int shift = msb - SubBits;
        return 2 * Sub + (shift - 1) * Sub + (int)((v >> shift) - Sub);
    }

    /// <summary>The highest value that lands in bucket i (a percentile is reported no lower than true).</summary>
    static long HighValue(int i)
    {
        if (i < 2 * Sub) return i;
        int j = i - 2 * Sub;
        int shift = j / Sub + 1;
        long top = j % Sub + Sub;
        return ((top + 1) << shift) - 1;
    }

    public void Add(Histogram other)
    {
        for (int i = 0; i < _counts.Length; i++) _counts[i] += other._counts[i];
        Count += other.Count;
        Sum += other.Sum;
        if (other.Max > Max) Max = other.Max;
    }

    public double PercentileMs(double percentile)
    {
        if (Count == 0) return 0;
        long target = Math.Max(1, (long)Math.Ceiling(percentile / 100.0 * Count));
        long seen = 0;
        for (int i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= target) return Math.Min(HighValue(i), Max) / UnitsPerMs;
        }
        return Max / UnitsPerMs;
    }

    public double MaxMs => Max / UnitsPerMs;
    public double MeanMs => Count == 0 ? 0 : Sum / (double)Count / UnitsPerMs;
}
