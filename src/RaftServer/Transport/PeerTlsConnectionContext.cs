using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace RaftServer.Transport;

/// <summary>On a connection that came over peer TLS: the node its certificate names (a peer, checked against --peer-ca-file).</summary>
public interface IPeerTlsFeature
{
    int NodeId { get; }
}

/// <summary>
/// A peer's HTTP/2 connection over peer TLS (forwarded calls, snapshot uploads), handed to Kestrel's
/// plain HTTP/2 endpoint: the TLS is done (<see cref="PeerTlsAcceptor"/>), so Kestrel reads HTTP/2
/// from the decrypted pipe. Its features carry <see cref="IPeerTlsFeature"/>, which the services
/// read to know that a call comes from an authenticated member.
/// </summary>
internal sealed class PeerTlsConnectionContext : ConnectionContext, IPeerTlsFeature
{
    private readonly SslStream _stream;
    private readonly CancellationTokenSource _closed = new();

    public PeerTlsConnectionContext(SslStream stream, PipeReader input, EndPoint? local, EndPoint? remote, int nodeId)
    {
        _stream = stream;
        NodeId = nodeId;
        LocalEndPoint = local;
        RemoteEndPoint = remote;
        Transport = new Pipe(input, PipeWriter.Create(stream, new StreamPipeWriterOptions(leaveOpen: true)));
        Features.Set<IPeerTlsFeature>(this);
        Features.Set<IConnectionIdFeature>(new IdFeature(ConnectionId));
    }

    public int NodeId { get; }
    public override string ConnectionId { get; set; } = "peer-tls-" + Guid.NewGuid().ToString("N")[..12];
    public override IFeatureCollection Features { get; } = new FeatureCollection();
    public override IDictionary<object, object?> Items { get; set; } = new Dictionary<object, object?>();
    public override IDuplexPipe Transport { get; set; }
    public override CancellationToken ConnectionClosed
    {
        get => _closed.Token;
        set { }
    }

    public override void Abort(ConnectionAbortedException abortReason)
    {
        try { _closed.Cancel(); } catch (ObjectDisposedException) { }
        _stream.Dispose();
    }

    public override async ValueTask DisposeAsync()
    {
        try { _closed.Cancel(); } catch (ObjectDisposedException) { }
        await Transport.Input.CompleteAsync();
        await Transport.Output.CompleteAsync();
        await _stream.DisposeAsync();
        _closed.Dispose();
    }

    private sealed class Pipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;
        public PipeWriter Output { get; } = output;
    }

    private sealed class IdFeature(string id) : IConnectionIdFeature
    {
        public string ConnectionId { get; set; } = id;
    }
}
