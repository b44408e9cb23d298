using System.Net.Sockets;

namespace RaftServer.Tests.NetworkFaults;

/// <summary>What the attack runs (<see cref="AttackHistoryTests"/>, <see cref="PeerTlsHistoryTests"/>) share:
/// a connection from the attacker's namespace to a node, and the check that a node logged a refusal.</summary>
internal static class AttackTools
{
    /// <summary>A TCP connection from <paramref name="attacker"/>'s namespace to <paramref name="node"/>'s port (5 s to connect).</summary>
    public static async Task<Socket> Connect(NamespaceThread attacker, int node)
    {
        var socket = attacker.Invoke(() => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true });
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await socket.ConnectAsync(NetworkLab.NodeAddress(node), NetworkLab.NodePort, timeout.Token);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Adds a problem unless <paramref name="node"/> logs <paramref name="text"/> within 3 s.</summary>
    public static async Task ExpectLog(LabCluster cluster, int node, string text, List<string> problems)
    {
        if (!await cluster.Process(node).WaitForOutput(text, TimeSpan.FromSeconds(3)))
            problems.Add($"node {node} did not log \"{text}\"");
    }
}
