using System.Diagnostics;

namespace RaftServer.Transport;

/// <summary>
/// At most one log line per key per <see cref="Window"/>: a peer that retries a refused connection
/// every half second must not flood the log. The line that is let through says how many were held
/// back since the last one. Thread-safe; bounded (past <see cref="MaxKeys"/> keys it starts afresh).
/// </summary>
public sealed class LogLimiter(TimeSpan window)
{
    public const int MaxKeys = 1024;
    private readonly Dictionary<string, (long Last, int Held)> _seen = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    public TimeSpan Window { get; } = window;

    /// <summary>True when a line for <paramref name="key"/> may be logged now; <paramref name="held"/> is
    /// how many were held back since the last one.</summary>
    public bool Allow(string key, out int held)
    {
        var now = Stopwatch.GetTimestamp();
        lock (_gate)
        {
            if (_seen.TryGetValue(key, out var s) && Stopwatch.GetElapsedTime(s.Last, now) < Window)
            {
                _seen[key] = (s.Last, s.Held + 1);
                held = 0;
                return false;
            }
            if (_seen.Count >= MaxKeys) _seen.Clear();
            held = s.Held;
            _seen[key] = (now, 0);
            return true;
        }
    }
}
