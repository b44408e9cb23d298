using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using P = RaftPS.Protocol;

namespace RaftServer.Transport;

/// <summary>
/// Kestrel connection middleware on the node's one port: a connection that opens with
/// <see cref="PeerWire.Preface"/> is a peer's message stream and is read here, frame by frame,
/// each batch handed to <c>deliver</c> (on the thread that read it); any other connection
/// (HTTP/2: the client service, snapshots) goes on to the HTTP/2 server untouched. While
/// <c>refuse</c> says so (the node is suspended) peer connections are closed at once, and a
/// connection open when it starts is closed at its next batch. A malformed frame closes the
/// connection with a warning; the peer reconnects.
/// </summary>
public static class PeerListener
{
    public static Func<ConnectionDelegate, ConnectionDelegate> Middleware(Func<bool> refuse, Action<P.MessageBatch> deliver, ILogger logger) =>
        next => connection => HandleAsync(connection, next, refuse, deliver, logger);

    private static async Task HandleAsync(ConnectionContext connection, ConnectionDelegate next, Func<bool> refuse,
        Action<P.MessageBatch> deliver, ILogger logger)
    {
        var input = connection.Transport.Input;
        ReadResult read;
        try
        {
            read = await input.ReadAsync(connection.ConnectionClosed);
        }
        catch (Exception e) when (IsConnectionEnd(e))
        {
            return;
        }
        var buffer = read.Buffer;
        if (buffer.IsEmpty || buffer.FirstSpan[0] != PeerWire.Preface[0])
        {
            // Not ours: give the bytes back unread (examined nothing, so the next read returns them at once).
            input.AdvanceTo(buffer.Start, buffer.Start);
            await next(connection);
            return;
        }
        try
        {
            await ReadPeerAsync(connection, input, read, refuse, deliver);
        }
        catch (InvalidDataException e)
        {
            logger.LogWarning("Closed a peer connection from {Remote}: {Error}", connection.RemoteEndPoint, e.Message);
        }
        catch (Exception e) when (IsConnectionEnd(e))
        {
            // the peer went away (a killed process resets its connections) or this node is stopping
        }
    }

    private static async Task ReadPeerAsync(ConnectionContext connection, PipeReader input, ReadResult read, Func<bool> refuse, Action<P.MessageBatch> deliver)
    {
        var buffer = read.Buffer;
        while (buffer.Length < PeerWire.Preface.Length)
        {
            if (read.IsCompleted) return;
            input.AdvanceTo(buffer.Start, buffer.End);
            read = await input.ReadAsync(connection.ConnectionClosed);
            buffer = read.Buffer;
        }
        if (!StartsWithPreface(buffer)) throw new InvalidDataException("not a RaftPS peer preface");
        buffer = buffer.Slice(PeerWire.Preface.Length);
        while (true)
        {
            if (refuse()) return;
            while (PeerWire.TryRead(ref buffer, out var batch))
                deliver(batch);
            input.AdvanceTo(buffer.Start, buffer.End);
            if (read.IsCompleted || read.IsCanceled) return;
            read = await input.ReadAsync(connection.ConnectionClosed);
            buffer = read.Buffer;
        }
    }

    private static bool StartsWithPreface(ReadOnlySequence<byte> buffer)
    {
        Span<byte> head = stackalloc byte[PeerWire.Preface.Length];
        buffer.Slice(0, head.Length).CopyTo(head);
        return head.SequenceEqual(PeerWire.Preface);
    }

    private static bool IsConnectionEnd(Exception e) => e is OperationCanceledException or IOException or ConnectionResetException or ConnectionAbortedException;
}
