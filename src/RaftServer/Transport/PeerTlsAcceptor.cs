using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using Microsoft.AspNetCore.Connections;

namespace RaftServer.Transport;

/// <summary>
/// The accepting side of a peer TLS connection (<see cref="PeerTls"/>), once the sorter has read its
/// preface: the echo, the TLS handshake (the peer's certificate must chain to --peer-ca-file, be
/// valid, and name exactly one node), then, by the first byte inside TLS, either a message
/// connection (the hello, which must name the certificate's node, then this node's answer; handed
/// to the node loop) or HTTP/2 (forwarded calls and snapshot uploads: handed to Kestrel as a
/// <see cref="PeerTlsConnectionContext"/> that carries the certificate's node, within the peers' own
/// bound, <see cref="PeerHttpConnections"/>). Each step that fails closes the connection with a
/// (rate-limited) line; so does anything unexpected, which never escapes the handshake's task.
/// Handshakes run on one polling thread (<see cref="TlsHandshakePoller"/>), at most
/// <see cref="MaxHandshakes"/> at a time (a new one abandons the oldest), each within
/// <see cref="PeerTls.HandshakeTimeout"/>.
/// </summary>
public sealed class PeerTlsAcceptor(PeerTls tls, PeerHandshake handshake, Func<bool> refuse,
    Action<TlsPeerConnection, int> acceptPeer, Func<ConnectionContext, bool> toKestrel, PeerHttpConnections? httpConnections = null) : IDisposable
{
    private readonly TlsHandshakePoller _poller = new();

    /// <summary>The peers' HTTP/2 connections handed to Kestrel now.</summary>
    public PeerHttpConnections HttpConnections { get; } = httpConnections ?? new PeerHttpConnections();

    /// <summary>
    /// Handshakes in progress at once; past this the oldest is abandoned (its socket closed) for
    /// the newest, as the sorter does: connections that stall their handshake cannot keep real
    /// peers out, a real peer's handshake takes milliseconds and it retries.
    /// </summary>
    public const int MaxHandshakes = 64;
    private readonly LinkedList<CancellationTokenSource> _inProgress = new();
    private readonly Lock _gate = new();

    /// <summary>Takes over a socket whose TLS preface the sorter has read (blocking mode, nothing else read).</summary>
    public void Accept(Socket socket)
    {
        LoopFedStream stream;
        try
        {
            stream = new LoopFedStream(socket);
        }
        catch (IOException)
        {
            socket.Dispose(); // no longer connected
            return;
        }
        var timeout = new CancellationTokenSource(PeerTls.HandshakeTimeout);
        CancellationTokenSource? oldest = null;
        LinkedListNode<CancellationTokenSource> entry;
        lock (_gate)
        {
            if (_inProgress.Count >= MaxHandshakes)
            {
                oldest = _inProgress.First!.Value;
                _inProgress.RemoveFirst();
            }
            entry = _inProgress.AddLast(timeout);
        }
        if (oldest is not null)
        {
            handshake.Warn("tls cap", "Abandoned the oldest of {Max} peer TLS handshakes in progress for a new connection from {Remote}", MaxHandshakes, Remote(socket));
            try
            {
                oldest.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // that handshake ended meanwhile
            }
        }
        _poller.Start(stream, timeout.Token, async () =>
        {
            try
            {
                await AcceptAsync(socket, stream, timeout);
            }
            catch (Exception e)
            {
                // The last resort of this task: nothing may end it unobserved. The connection is closed
                // (AcceptAsync disposes what it did not hand over) and the reason logged.
                handshake.Warn($"tls error {e.GetType().Name}", "Closed a peer TLS connection from {Remote} after an unexpected error: {Error}",
                    Remote(socket), $"{e.GetType().Name}: {e.Message}");
            }
            finally
            {
                lock (_gate)
                    if (entry.List is not null) _inProgress.Remove(entry);
                timeout.Dispose();
            }
        });
    }

    /// <param name="timeout">Ends the handshake: at <see cref="PeerTls.HandshakeTimeout"/>, or when a newer connection takes its place.</param>
    /// <param name="network">The socket's stream, fed by the poller's thread (this runs there), then by the node loop or, for HTTP/2, handed back to a <see cref="NetworkStream"/>.</param>
    private async Task AcceptAsync(Socket socket, LoopFedStream network, CancellationTokenSource timeout)
    {
        EndPoint? remote;
        try
        {
            remote = socket.RemoteEndPoint;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            await network.DisposeAsync();
            return;
        }
        var source = (remote as IPEndPoint)?.Address.ToString() ?? "?";
        var ssl = new SslStream(network, leaveInnerStreamOpen: false);
        var handedOver = false;
        var verdict = new PeerCertificateVerdict();
        try
        {
            await network.WriteAsync(PeerWire.TlsPreface.ToArray(), timeout.Token);
            try
            {
                await ssl.AuthenticateAsServerAsync(tls.ServerOptions(verdict), timeout.Token);
            }
            catch (Exception e) when (e is AuthenticationException or IOException)
            {
                if (verdict.Problem is { } problem)
                    handshake.Warn($"tls cert {source} {verdict.Kind}", "Refused a peer TLS connection from {Remote}: {Problem}", remote, problem);
                else
                    handshake.Warn($"tls handshake {source}", "The peer TLS handshake with {Remote} failed: {Error} (if that node logged a refusal of this node's certificate, it says why)",
                        remote, e.Message);
                return;
            }
            var reader = PipeReader.Create(ssl, new StreamPipeReaderOptions(leaveOpen: true));
            // The first byte inside TLS: a hello's length (at most 64) or HTTP/2's "PRI * HTTP/2.0".
            var first = await reader.ReadAsync(timeout.Token);
            if (first.Buffer.IsEmpty)
                return;
            var isHttp2 = first.Buffer.FirstSpan[0] == (byte)'P';
            reader.AdvanceTo(first.Buffer.Start); // nothing consumed or examined: the next read returns these bytes at once
            if (isHttp2)
            {
                // Bytes of the handshake still waiting to go out would race Kestrel's first writes:
                // such a peer reads nothing anyway, and a real one retries.
                if (!handshake.AdmitCertified(verdict.NodeId, remote) || refuse() || network.HasUnsent) return;
                network.HandToNetwork(); // Kestrel reads HTTP/2 on its own threads
                handedOver = HandOver(new PeerTlsConnectionContext(ssl, reader, socket.LocalEndPoint, remote, verdict.NodeId, HttpConnections.Remove), source);
                return;
            }
            var hello = await ReadHelloAsync(reader, timeout.Token);
            if (hello is null) return;
            if (hello.NodeId != verdict.NodeId)
            {
                handshake.Warn($"tls hello {source}", "Refused a peer TLS connection from {Remote}: its hello says node {Hello}, its certificate names node {Certified}",
                    remote, hello.NodeId, verdict.NodeId);
                return;
            }
            // This node's answer first, in every case: a refused peer learns which cluster this is
            // and whether it was removed.
            await ssl.WriteAsync(handshake.AnswerTo(hello), timeout.Token);
            if (!handshake.Admit(hello, remote))
            {
                await Task.Delay(TimeSpan.FromMilliseconds(200)); // let the answer reach it before the close
                return;
            }
            if (refuse()) return;
            acceptPeer(new TlsPeerConnection(ssl, network, reader, remote, hello.NodeId), hello.NodeId);
            handedOver = true;
        }
        catch (InvalidDataException e)
        {
            handshake.Warn($"bad {source}", "Closed a peer TLS connection from {Remote}: {Error}", remote, e.Message);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
            if (e is OperationCanceledException)
                handshake.Warn($"tls slow {source}", "Closed a peer TLS connection from {Remote}: it did not finish its handshake and hello in time ({Ms} ms, or before {Max} newer connections came)",
                    remote, (int)PeerTls.HandshakeTimeout.TotalMilliseconds, MaxHandshakes);
        }
        finally
        {
            if (!handedOver) await ssl.DisposeAsync();
        }
    }

    /// <summary>Hands a peer's HTTP/2 connection to Kestrel within the peers' bound; false when it is not taken (the caller closes it).</summary>
    private bool HandOver(PeerTlsConnectionContext connection, string source)
    {
        if (!HttpConnections.TryAdd(connection.NodeId, connection, out var evicted))
        {
            handshake.Warn($"tls http cap {source}", "Refused a peer TLS connection (HTTP/2) from node {Peer} at {Remote}: {Max} peer HTTP/2 connections are open",
                connection.NodeId, connection.RemoteEndPoint, HttpConnections.Total);
            return false;
        }
        if (evicted is not null)
        {
            handshake.Warn($"tls http node {evicted.NodeId}", "Closed the oldest of node {Peer}'s {Max} peer TLS HTTP/2 connections for its new one from {Remote}",
                evicted.NodeId, HttpConnections.PerNode, connection.RemoteEndPoint);
            evicted.Abort(new ConnectionAbortedException($"node {evicted.NodeId} opened more than {HttpConnections.PerNode} peer HTTP/2 connections"));
        }
        if (toKestrel(connection)) return true;
        HttpConnections.Remove(connection); // the node is stopping: nobody took it
        return false;
    }

    /// <summary>The hello frame at the start of <paramref name="reader"/>, consumed; null when the peer closed first.</summary>
    private static async Task<RaftPS.Protocol.PeerHello?> ReadHelloAsync(PipeReader reader, CancellationToken ct)
    {
        while (true)
        {
            var result = await reader.ReadAsync(ct);
            var buffer = result.Buffer;
            if (buffer.Length >= PeerWire.HeaderBytes)
            {
                var header = new byte[PeerWire.HeaderBytes];
                buffer.Slice(0, PeerWire.HeaderBytes).CopyTo(header);
                var length = PeerWire.HelloLength(header);
                if (buffer.Length >= PeerWire.HeaderBytes + length)
                {
                    var hello = PeerWire.ParseHello(buffer.Slice(PeerWire.HeaderBytes, length).ToArray());
                    reader.AdvanceTo(buffer.GetPosition(PeerWire.HeaderBytes + length));
                    return hello;
                }
            }
            if (result.IsCompleted) return null;
            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>Stops the handshakes' thread: those in progress end and close their connections.</summary>
    public void Dispose() => _poller.Dispose();

    private static string Remote(Socket socket)
    {
        try
        {
            return socket.RemoteEndPoint?.ToString() ?? "?";
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return "?";
        }
    }
}
