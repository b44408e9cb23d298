using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using RaftPS.Protocol;
using RaftServer.Transport;

namespace RaftServer.Tests.Integration;

/// <summary>
/// An in-process peer that opens a peer TLS message connection to a node with any certificate and
/// any hello (what an attacker, or a misconfigured node, can send), to see what the node does.
/// It accepts any server certificate: these tests are about the node's checks.
/// </summary>
public sealed class PeerTlsPeer : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly SslStream _ssl;

    private PeerTlsPeer(Socket socket, SslStream ssl)
    {
        _socket = socket;
        _ssl = ssl;
    }

    /// <summary>Connects to 127.0.0.1:<paramref name="port"/>: the TLS preface, its echo, the TLS handshake with <paramref name="certificate"/>.</summary>
    public static async Task<PeerTlsPeer> ConnectAsync(int port, X509Certificate2 certificate)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(IPAddress.Loopback, port);
            return await ConnectAsync(socket, certificate);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The same over a socket connected already (e.g. made in another network namespace); it owns the socket from now on.</summary>
    public static async Task<PeerTlsPeer> ConnectAsync(Socket socket, X509Certificate2 certificate) =>
        new(socket, await OpenAsync(new NetworkStream(socket, ownsSocket: false), certificate));

    /// <summary>
    /// The TLS stream of a peer TLS connection over <paramref name="socket"/> (it owns the socket): what
    /// a member's gRPC channel speaks HTTP/2 in (forwarded calls, snapshot uploads), for a channel's
    /// ConnectCallback.
    /// </summary>
    public static async Task<Stream> OpenStreamAsync(Socket socket, X509Certificate2 certificate) =>
        await OpenAsync(new NetworkStream(socket, ownsSocket: true), certificate);

    private static async Task<SslStream> OpenAsync(NetworkStream network, X509Certificate2 certificate)
    {
        await network.WriteAsync(PeerWire.TlsPreface.ToArray());
        var echo = new byte[PeerWire.TlsPreface.Length];
        await network.ReadExactlyAsync(echo);
        Assert.Equal(PeerWire.TlsPreface.ToArray(), echo);
        var ssl = new SslStream(network, leaveInnerStreamOpen: false);
        await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "raftps-test",
            ClientCertificateContext = SslStreamCertificateContext.Create(certificate, null, offline: true),
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        });
        return ssl;
    }

    public Task SendAsync(byte[] bytes) => _ssl.WriteAsync(bytes).AsTask();

    public Task SendHelloAsync(int nodeId, ulong clusterId = 0) => SendAsync(PeerWire.Hello(clusterId, nodeId));

    public async Task SendBatchAsync(MessageBatch batch)
    {
        var buffer = Array.Empty<byte>();
        var length = PeerWire.Write(batch, ref buffer);
        await SendAsync(buffer[..length]);
    }

    /// <summary>The node's answer hello; null when the node closed (or broke) the connection instead, within 5 s.</summary>
    public async Task<PeerHello?> ReadHelloAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var header = new byte[PeerWire.HeaderBytes];
        try
        {
            await _ssl.ReadExactlyAsync(header, timeout.Token);
            var body = new byte[PeerWire.HelloLength(header)];
            await _ssl.ReadExactlyAsync(body, timeout.Token);
            return PeerWire.ParseHello(body);
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or AuthenticationException)
        {
            return null;
        }
    }

    /// <summary>Whether the node closed the connection within <paramref name="timeout"/> (reads and discards what it sends).</summary>
    public async Task<bool> ClosedWithinAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var buffer = new byte[256];
        try
        {
            while (await _ssl.ReadAsync(buffer, cts.Token) > 0) { }
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (Exception e) when (e is IOException or AuthenticationException)
        {
            return true;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _ssl.DisposeAsync();
        _socket.Dispose();
    }
}
