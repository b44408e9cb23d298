using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using RaftServer.Tests.Integration;

namespace RaftServer.Tests.NetworkFaults;

/// <summary>The lab itself: it only reaches its own addresses, and it leaves nothing behind.</summary>
[Collection(ProcessCollection.Name)]
public sealed class NetworkLabTests
{
    [SkippableFact]
    public void When_the_test_process_dies_its_guard_removes_the_namespaces_and_their_processes()
    {
        Skip.If(NetworkLab.Unavailable is not null, NetworkLab.Unavailable);
        var lab = new NetworkLab(2);
        // A process inside a node's namespace, as a server would be.
        using var sleeper = Process.Start(new ProcessStartInfo("ip", $"netns exec {lab.NodeNamespace(0)} sleep 60") { UseShellExecute = false })!;
        Assert.Equal(4, NetworkLab.Namespaces(lab.RunName).Count);

        // As when this process is killed: the guard's pipe closes and nobody else cleans up.
        lab.AbandonForTest();
        var clock = Stopwatch.StartNew();
        while (NetworkLab.Namespaces(lab.RunName).Count > 0 && clock.Elapsed < TimeSpan.FromSeconds(30)) Thread.Sleep(20);
        Assert.Empty(NetworkLab.Namespaces(lab.RunName));
        Assert.True(sleeper.WaitForExit(30_000), "the process inside the namespace was not killed");
    }

    [SkippableFact]
    public void The_client_namespace_reaches_the_nodes_and_nothing_else()
    {
        Skip.If(NetworkLab.Unavailable is not null, NetworkLab.Unavailable);
        using var lab = new NetworkLab(1);
        using var client = new NamespaceThread(lab.ClientNamespace);
        // No route leaves the lab: a connection to any other address fails at once, without a packet sent.
        var error = Assert.Throws<SocketException>(() => client.Invoke(() =>
        {
            using var s = new Socket(SocketType.Stream, ProtocolType.Tcp);
            s.Connect(IPAddress.Parse("192.0.2.1"), 80); // TEST-NET-1: never reached
            return 0;
        }));
        Assert.Equal(SocketError.NetworkUnreachable, error.SocketErrorCode);
        // A node's address answers (nothing listens on that port: refused, which proves the path).
        var refused = Assert.Throws<SocketException>(() => client.Invoke(() =>
        {
            using var s = new Socket(SocketType.Stream, ProtocolType.Tcp);
            s.Connect(NetworkLab.NodeAddress(0), NetworkLab.NodePort);
            return 0;
        }));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
    }
}
