using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using RaftServer.Transport;

namespace RaftServer.Tests.Transport;

public sealed class TcpRetransmitFloorTests
{
    [Theory]
    [InlineData(50, 50)]
    [InlineData(100, 100)]
    [InlineData(1, 10)] // the ping interval is at least 10 ms
    [InlineData(1000, 200)] // never above the kernel's own floor
    public void The_floor_is_one_heartbeat_between_10_and_200_ms(int heartbeatMs, int floorMs) =>
        Assert.Equal(TimeSpan.FromMilliseconds(floorMs), PeerLinkTimings.For(heartbeatMs, 10 * heartbeatMs).RetransmitFloor);

    [SkippableFact]
    public void A_socket_given_the_floor_has_it_and_a_listening_sockets_accepted_connections_inherit_it()
    {
        Skip.If(Integration.TcpRetransmitTimeouts.Unavailable() is not null, "no TCP_RTO_MIN_US here");
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        TcpRetransmitFloor.Apply(listener, TimeSpan.FromMilliseconds(40), NullLogger.Instance);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        using var client = new Socket(SocketType.Stream, ProtocolType.Tcp);
        client.Connect(listener.LocalEndPoint!);
        using var accepted = listener.Accept();

        // The kernel keeps it in clock ticks (4 ms at 250 Hz), so it may read back rounded up.
        Assert.InRange(FloorUs(accepted), 40_000, 44_000);
        // Untouched: the kernel's default for new sockets.
        Assert.Equal(int.Parse(File.ReadAllText("/proc/sys/net/ipv4/tcp_rto_min_us").Trim()), FloorUs(client));
    }

    private static int FloorUs(Socket socket)
    {
        var value = new byte[4];
        socket.GetRawSocketOption(6, 45, value);
        return BitConverter.ToInt32(value);
    }
}
