using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace RaftServer.Transport;

/// <summary>
/// Opens the TCP connections of a node's gRPC channel to a peer (forwarded calls). Each attempt
/// gets <see cref="PeerLinkTimings.ConnectTimeout"/> (an election timeout) and the next one starts
/// at once, as the peer link's own attempts do: the kernel resends a lost SYN only after 1 s, so on
/// a link that drops packets one lost SYN held every call waiting for the new connection for a
/// whole second. Each socket gets the node's retransmission floor (<see cref="TcpRetransmitFloor"/>).
/// The caller's token (SocketsHttpHandler.ConnectTimeout, the call's deadline) ends the attempts.
/// </summary>
public sealed class PeerSocketConnector(PeerLinkTimings timings, ILogger? logger)
{
    public async Task<Socket> ConnectAsync(DnsEndPoint endpoint, CancellationToken ct)
    {
        while (true)
        {
            using var attempt = CancellationTokenSource.CreateLinkedTokenSource(ct);
            attempt.CancelAfter(timings.ConnectTimeout);
            try
            {
                return await ConnectOnceAsync(endpoint, attempt.Token, socket => TcpRetransmitFloor.Apply(socket, timings.RetransmitFloor, logger));
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                // This attempt's SYN or its answer was lost: a new attempt sends a new one now.
            }
        }
    }

    /// <summary>One attempt: a new socket (Nagle off, <paramref name="prepare"/>d), connected or disposed.</summary>
    public static async Task<Socket> ConnectOnceAsync(DnsEndPoint endpoint, CancellationToken ct, Action<Socket>? prepare = null)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            prepare?.Invoke(socket);
            await socket.ConnectAsync(endpoint, ct);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
