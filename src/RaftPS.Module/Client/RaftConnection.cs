namespace RaftPS;

/// <summary>A client's handle on one node of a cluster: where to send calls first.</summary>
public sealed class RaftConnection
{
    public RaftConnection(string address, int port)
    {
        Address = address;
        Port = port;
    }

    public string Address { get; }
    public int Port { get; }

    public override string ToString() => $"{Address}:{Port}";
}
