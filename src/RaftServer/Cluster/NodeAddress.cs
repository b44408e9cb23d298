namespace RaftServer.Cluster;

/// <summary>A node's id and the address its server listens on (one line of config.conf).</summary>
public sealed record NodeAddress(int Id, string Host, int Port)
{
    public override string ToString() => $"{Id} {Host}:{Port}";
}
