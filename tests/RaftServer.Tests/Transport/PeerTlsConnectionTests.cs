using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using RaftServer.Transport;

namespace RaftServer.Tests.Transport;

/// <summary>
/// A peer's HTTP/2 connection over peer TLS as Kestrel gets it (<see cref="PeerTlsConnectionContext"/>):
/// its ConnectionClosed fires when the peer's side ends, its place in the peers' own bound
/// (<see cref="PeerHttpConnections"/>) is given back exactly once when it is disposed, and the bound
/// keeps each node to its newest connections and all peers to a total.
/// </summary>
public sealed class PeerTlsConnectionTests
{
    [Fact]
    public async Task ConnectionClosed_fires_when_the_peer_closes_its_side_and_the_place_is_given_back_once()
    {
        using var ca = TestPki.Root("ca");
        using var serverCertificate = ca.Node(0);
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        var accepted = await listener.AcceptTcpClientAsync();
        var serverSsl = new SslStream(accepted.GetStream());
        var clientSsl = new SslStream(client.GetStream());
        await Task.WhenAll(
            serverSsl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
            {
                ServerCertificateContext = SslStreamCertificateContext.Create(serverCertificate, null, offline: true),
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            }),
            clientSsl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "localhost",
                RemoteCertificateValidationCallback = (_, _, _, _) => true,
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            }));
        var bound = new PeerHttpConnections();
        var disposals = 0;
        var connection = new PeerTlsConnectionContext(serverSsl, PipeReader.Create(serverSsl), null, accepted.Client.RemoteEndPoint, 1,
            c => { Interlocked.Increment(ref disposals); bound.Remove(c); });
        Assert.True(bound.TryAdd(1, connection, out _));
        var closed = new TaskCompletionSource();
        using var registration = connection.ConnectionClosed.Register(() => closed.TrySetResult());

        await clientSsl.WriteAsync("PRI"u8.ToArray());
        var first = await connection.Transport.Input.ReadAsync();
        Assert.Equal(3, first.Buffer.Length);
        connection.Transport.Input.AdvanceTo(first.Buffer.End);
        Assert.False(connection.ConnectionClosed.IsCancellationRequested);

        // The peer goes away: the reader sees the end, and ConnectionClosed fires (as Kestrel's own
        // socket connections do), before anyone disposes the connection.
        await clientSsl.DisposeAsync();
        client.Dispose();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
        {
            ReadResult end;
            do
            {
                end = await connection.Transport.Input.ReadAsync(timeout.Token);
                connection.Transport.Input.AdvanceTo(end.Buffer.End);
            }
            while (!end.IsCompleted);
        }
        await closed.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(1, bound.Count);

        await connection.DisposeAsync();
        await connection.DisposeAsync();
        Assert.Equal(1, disposals);
        Assert.Equal(0, bound.Count);
        accepted.Dispose();
    }

    [Fact]
    public void The_peers_bound_keeps_each_nodes_newest_connections_and_refuses_past_the_total()
    {
        var bound = new PeerHttpConnections(perNode: 2, total: 3);
        var a1 = Fake(1);
        var a2 = Fake(1);
        var a3 = Fake(1);
        Assert.True(bound.TryAdd(1, a1, out var evicted));
        Assert.Null(evicted);
        Assert.True(bound.TryAdd(1, a2, out evicted));
        Assert.Null(evicted);
        // Node 1's third connection replaces its oldest.
        Assert.True(bound.TryAdd(1, a3, out evicted));
        Assert.Same(a1, evicted);
        Assert.Equal(2, bound.Count);
        bound.Remove(a1); // the evicted one ends later: its place was given back already
        Assert.Equal(2, bound.Count);
        Assert.True(bound.TryAdd(2, Fake(2), out evicted));
        Assert.Null(evicted);
        // All three places are taken: another node's connection is refused; node 1 still replaces its own.
        Assert.False(bound.TryAdd(3, Fake(3), out _));
        Assert.True(bound.TryAdd(1, Fake(1), out evicted));
        Assert.Same(a2, evicted);
        Assert.Equal(3, bound.Count);
        bound.Remove(a3);
        Assert.True(bound.TryAdd(3, Fake(3), out _));
    }

    private static PeerTlsConnectionContext Fake(int node) =>
        new(new SslStream(new MemoryStream()), PipeReader.Create(new MemoryStream()), null, null, node);
}
