using System.Net;
using System.Net.Sockets;

namespace RaftServer.Transport;

/// <summary>
/// Wakes a thread asleep in <see cref="Socket.Select"/> (poll()) over sockets it reads itself: that
/// thread puts <see cref="Socket"/> in its poll list, any thread calls <see cref="Wake"/> (a datagram
/// to it over loopback), and the woken thread calls <see cref="Drain"/> when it polled readable.
/// Used by the node loop (<see cref="PeerSockets"/>), the sorter and the TLS handshake poller.
/// </summary>
public sealed class PollWakeup : IDisposable
{
    private readonly Socket _sender;
    private readonly byte[] _drain = new byte[64];

    public PollWakeup()
    {
        Socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        Socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _sender = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        _sender.Connect(Socket.LocalEndPoint!);
    }

    /// <summary>The socket to poll with the others: readable once <see cref="Wake"/> was called.</summary>
    public Socket Socket { get; }

    /// <summary>Any thread: makes the next (or the current) poll over <see cref="Socket"/> return.</summary>
    public void Wake()
    {
        try
        {
            _sender.Send([1]);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // stopping (the sockets are closed); or a full buffer: a wake-up is pending anyway
        }
    }

    /// <summary>The polling thread: reads the wake-ups that arrived, so the next poll sleeps again.</summary>
    public void Drain()
    {
        while (Socket.Available > 0) Socket.Receive(_drain);
    }

    public void Dispose()
    {
        Socket.Dispose();
        _sender.Dispose();
    }
}
