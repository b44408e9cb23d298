using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace RaftServer.Transport;

/// <summary>
/// Lowers the minimum retransmission timeout of a node's TCP connections (its peer links, the
/// connections of forwarded calls, and every connection its port accepts) to
/// <see cref="PeerLinkTimings.RetransmitFloor"/>. Linux waits at least 200 ms before it sends a
/// lost segment again, and doubles the wait when the copy is lost too: on a lossy link one lost
/// packet held a peer link for most of an election timeout, and two in a row for longer than one
/// (docs/design.md, "The peer transport"). The kernel still adds the measured round trip, so the
/// timeout follows a slow link; only the floor under it moves. Linux 6.15 and later
/// (TCP_RTO_MIN_US); elsewhere the kernel's default stays, said once in the log.
/// </summary>
public static class TcpRetransmitFloor
{
    private const int IpProtoTcp = 6;
    private const int TcpRtoMinUs = 45; // linux/tcp.h
    private static int _unsupportedSaid;

    public static void Apply(Socket socket, TimeSpan floor, ILogger? logger)
    {
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            socket.SetRawSocketOption(IpProtoTcp, TcpRtoMinUs, BitConverter.GetBytes((int)(floor.Ticks / TimeSpan.TicksPerMicrosecond)));
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ProtocolOption or SocketError.InvalidArgument or SocketError.OperationNotSupported)
        {
            // An older kernel: the connection works as before, with the default floor.
            if (Interlocked.Exchange(ref _unsupportedSaid, 1) == 0)
                logger?.LogInformation("This kernel cannot lower a connection's minimum retransmission timeout (TCP_RTO_MIN_US, Linux 6.15 and later: {Error}): " +
                    "a packet lost between nodes is sent again after 200 ms at the earliest", e.Message);
        }
    }
}
