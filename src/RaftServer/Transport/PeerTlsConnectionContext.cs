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
/// peer endpoint (<see cref="PeerTlsSideEndPoint"/>): the TLS is done (<see cref="PeerTlsAcceptor"/>),
/// so Kestrel reads HTTP/2 from the decrypted pipe. Its features carry <see cref="IPeerTlsFeature"/>,
/// which the services read to know that a call comes from an authenticated member.
/// <see cref="ConnectionClosed"/> fires, as on Kestrel's own socket connections, when the peer's
/// side ends (the decrypted input completes or fails), when the connection is aborted, and at the
/// latest when Kestrel disposes it; <c>onDisposed</c> runs once, when Kestrel (or whoever holds it
/// last) disposes it, and is where the connection's place in <see cref="PeerHttpConnections"/> is given back.
/// </summary>
public sealed class PeerTlsConnectionContext : ConnectionContext, IPeerTlsFeature
{
    private readonly SslStream _stream;
    private readonly CancellationTokenSource _closed = new();
    private readonly Action<PeerTlsConnectionContext>? _onDisposed;
    private int _closeFired;
    private int _disposed;

    public PeerTlsConnectionContext(SslStream stream, PipeReader input, EndPoint? local, EndPoint? remote, int nodeId,
        Action<PeerTlsConnectionContext>? onDisposed = null)
    {
        _stream = stream;
        _onDisposed = onDisposed;
        NodeId = nodeId;
        LocalEndPoint = local;
        RemoteEndPoint = remote;
        Transport = new Pipe(new EndWatchingReader(input, this), PipeWriter.Create(stream, new StreamPipeWriterOptions(leaveOpen: true)));
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

    /// <summary>Fires <see cref="ConnectionClosed"/> once, off the caller's thread (as Kestrel's socket
    /// transport does): its callbacks must not run inside a read of the pipe.</summary>
    private void FireClosed()
    {
        if (Interlocked.Exchange(ref _closeFired, 1) != 0) return;
        ThreadPool.UnsafeQueueUserWorkItem(static c =>
        {
            try { c._closed.Cancel(); } catch (ObjectDisposedException) { }
        }, this, preferLocal: false);
    }

    public override void Abort(ConnectionAbortedException abortReason)
    {
        FireClosed();
        _stream.Dispose();
    }

    public override async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        try
        {
            if (Interlocked.Exchange(ref _closeFired, 1) == 0)
                try { _closed.Cancel(); } catch (ObjectDisposedException) { }
            await Transport.Input.CompleteAsync();
            await Transport.Output.CompleteAsync();
            await _stream.DisposeAsync();
        }
        finally
        {
            _onDisposed?.Invoke(this);
        }
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

    /// <summary>The decrypted input, telling the connection when the peer's side has ended (or broke).</summary>
    private sealed class EndWatchingReader(PipeReader inner, PeerTlsConnectionContext connection) : PipeReader
    {
        public override async ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
        {
            try
            {
                var result = await inner.ReadAsync(cancellationToken);
                if (result.IsCompleted) connection.FireClosed();
                return result;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                connection.FireClosed();
                throw;
            }
        }

        public override bool TryRead(out ReadResult result)
        {
            if (!inner.TryRead(out result)) return false;
            if (result.IsCompleted) connection.FireClosed();
            return true;
        }

        public override void AdvanceTo(SequencePosition consumed) => inner.AdvanceTo(consumed);
        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => inner.AdvanceTo(consumed, examined);
        public override void CancelPendingRead() => inner.CancelPendingRead();
        public override void Complete(Exception? exception = null) => inner.Complete(exception);
        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);
    }
}
