namespace RaftServer.Cluster;

/// <summary>A node's id and the address its server listens on (one line of config.conf).</summary>
public sealed record NodeAddress(int Id, string Host, int Port)
{
    /// <summary>"host:port", an IPv6 address in brackets ("[::1]:5000"): what a URI and a log line need.</summary>
    public string Authority => Format(Host, Port);

    /// <summary>The URI of the node's gRPC services (plain HTTP/2, or HTTP/2 inside peer TLS).</summary>
    public string HttpUri => "http://" + Authority;

    public override string ToString() => $"{Id} {Authority}";

    /// <summary>A host as given, except an IPv6 address written as in a URL ("[::1]"), which loses its brackets.</summary>
    public static string BareHost(string host) =>
        host is ['[', .., ']'] && Uri.CheckHostName(host[1..^1]) == UriHostNameType.IPv6 ? host[1..^1] : host;

    /// <summary>"host:port", an IPv6 address (a host with a colon) in brackets.</summary>
    public static string Format(string host, int port) =>
        host.Contains(':') ? $"[{host}]:{port.ToString(System.Globalization.CultureInfo.InvariantCulture)}" : $"{host}:{port.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
}
