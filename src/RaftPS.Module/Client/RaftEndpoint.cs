namespace RaftPS.Client;

/// <summary>Where a node's client service listens.</summary>
internal readonly record struct RaftEndpoint(string Host, int Port)
{
    public override string ToString() => Host.Contains(':') ? $"[{Host}]:{Port}" : $"{Host}:{Port}";

    /// <summary>Parses "host:port" (or "[v6]:port"); null when it is not that.</summary>
    public static RaftEndpoint? TryParse(string text)
    {
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), out var port) || port is < 1 or > 65535)
            return null;
        var host = text[..colon].Trim('[', ']');
        return host.Length == 0 ? null : new RaftEndpoint(host, port);
    }

    public bool Equals(RaftEndpoint other) =>
        Port == other.Port && string.Equals(Host, other.Host, StringComparison.OrdinalIgnoreCase);

    public override int GetHashCode() => HashCode.Combine(Port, Host.ToLowerInvariant());
}
