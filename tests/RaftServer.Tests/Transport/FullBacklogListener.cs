using System.Net;
using System.Net.Sockets;

namespace RaftServer.Tests.Transport;

/// <summary>
/// A loopback listener whose accept queue is full (Linux): new connection attempts get no answer,
/// their SYNs dropped as across a partition or a lossy link; the kernel would resend them after 1 s,
/// then 3 s. <see cref="Drain"/> makes room again.
/// </summary>
internal sealed class FullBacklogListener : IDisposable
{
    private readonly Socket _listener = new(SocketType.Stream, ProtocolType.Tcp);
    private readonly List<Socket> _fillers = new();

    public int Port { get; }

    private FullBacklogListener()
    {
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(0);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
    }

    /// <summary>Opens one and fills its accept queue (connections nobody accepts) until an attempt hangs.</summary>
    public static async Task<FullBacklogListener> OpenAsync()
    {
        var full = new FullBacklogListener();
        try
        {
            while (true)
            {
                var filler = new Socket(SocketType.Stream, ProtocolType.Tcp);
                full._fillers.Add(filler);
                using var attempt = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
                try { await filler.ConnectAsync(IPAddress.Loopback, full.Port, attempt.Token); }
                catch (OperationCanceledException) { return full; }
                Assert.True(full._fillers.Count < 64, "the accept queue never filled");
            }
        }
        catch
        {
            full.Dispose();
            throw;
        }
    }

    /// <summary>Accepts (and closes) what waits in the queue, making room for new connections.</summary>
    public void Drain()
    {
        while (_listener.Poll(0, SelectMode.SelectRead)) _listener.Accept().Dispose();
    }

    /// <summary>Closes the connections that filled the queue.</summary>
    public void CloseFillers()
    {
        foreach (var f in _fillers) f.Dispose();
    }

    public void Dispose()
    {
        CloseFillers();
        _listener.Dispose();
    }
}
