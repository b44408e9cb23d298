using System.Globalization;
using System.Net;

namespace RaftPS.Bench;

/// <summary>A small `--name value` / `--flag` parser: the benchmark needs no more.</summary>
sealed class Args
{
    readonly Dictionary<string, string?> _values = new(StringComparer.Ordinal);
    readonly HashSet<string> _used = new(StringComparer.Ordinal);

    public string Command { get; }

    public Args(string[] argv)
    {
        bool hasCommand = argv.Length > 0 && !argv[0].StartsWith("--", StringComparison.Ordinal);
        Command = hasCommand ? argv[0] : "help";
        for (int i = hasCommand ? 1 : 0; i < argv.Length; i++)
        {
            string a = argv[i];
            if (!a.StartsWith("--", StringComparison.Ordinal)) throw new UsageException($"unexpected argument '{a}'");
            string name = a[2..];
            string? value = null;
            int eq = name.IndexOf('=');
            if (eq >= 0) { value = name[(eq + 1)..]; name = name[..eq]; }
            else if (i + 1 < argv.Length && !argv[i + 1].StartsWith("--", StringComparison.Ordinal)) value = argv[++i];
            _values[name] = value;
        }
    }

    public string? Str(string name, string? fallback = null)
    {
        _used.Add(name);
        return _values.TryGetValue(name, out var v) ? v ?? throw new UsageException($"--{name} needs a value") : fallback;
    }

    public string Required(string name) => Str(name) ?? throw new UsageException($"--{name} is required");

    public bool Flag(string name)
    {
        _used.Add(name);
        if (!_values.TryGetValue(name, out var v)) return false;
        return v is null || v is "true" or "1" or "yes";
    }

    public int Int(string name, int fallback)
    {
        var s = Str(name);
        if (s is null) return fallback;
        return int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : throw new UsageException($"--{name}: '{s}' is not an integer");
    }

    public double Double(string name, double fallback)
    {
        var s = Str(name);
        if (s is null) return fallback;
        return double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : throw new UsageException($"--{name}: '{s}' is not a number");
    }

    public int[] IntList(string name, int[] fallback)
    {
        var s = Str(name);
        if (s is null) return fallback;
        var parts = s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var result = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out result[i]) || result[i] < 1)
                throw new UsageException($"--{name}: '{parts[i]}' is not a positive integer");
        return result;
    }

    public string[] List(string name, string[] fallback)
    {
        var s = Str(name);
        return s is null ? fallback : s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    /// <summary>Fails on options nobody asked for (typos must not silently fall back to defaults).</summary>
    public void CheckAllUsed()
    {
        foreach (var name in _values.Keys)
            if (!_used.Contains(name)) throw new UsageException($"unknown option --{name} for '{Command}'");
    }
}

sealed class UsageException(string message) : Exception(message);

/// <summary>A host:port on the loopback interface. Anything else is refused: this program only
/// ever loads servers on this machine.</summary>
sealed record Endpoint(string Host, int Port)
{
    public override string ToString() => Host.Contains(':') ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
    public Uri Uri => new($"http://{this}");

    public static Endpoint Parse(string text)
    {
        string s = text.Trim();
        if (s.StartsWith("http://", StringComparison.OrdinalIgnoreCase)) s = s[7..];
        else if (s.Contains("://", StringComparison.Ordinal)) throw new UsageException($"endpoint '{text}': only plain http:// (h2c) on loopback is supported");
        s = s.TrimEnd('/');
        string host; string portText;
        if (s.StartsWith('['))
        {
            int close = s.IndexOf(']');
            if (close < 0 || close + 1 >= s.Length || s[close + 1] != ':') throw new UsageException($"endpoint '{text}' is not [host]:port");
            host = s[1..close]; portText = s[(close + 2)..];
        }
        else
        {
            int colon = s.LastIndexOf(':');
            if (colon <= 0) throw new UsageException($"endpoint '{text}' is not host:port");
            host = s[..colon]; portText = s[(colon + 1)..];
        }
        if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
            throw new UsageException($"endpoint '{text}': bad port");
        if (!IsLoopback(host)) throw new UsageException($"endpoint '{text}' is not a loopback address: this benchmark only targets 127.0.0.0/8, ::1 or localhost");
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase)) host = "127.0.0.1";
        return new Endpoint(host, port);
    }

    public static bool IsLoopback(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
        || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));

    public static Endpoint[] ParseList(string text)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0) throw new UsageException("no endpoints given");
        var result = new Endpoint[parts.Length];
        for (int i = 0; i < parts.Length; i++) result[i] = Parse(parts[i]);
        return result;
    }
}
