using System.Collections.Concurrent;
using System.Net.Sockets;

namespace RaftServer.Transport;

/// <summary>
/// Runs the accepting side of peer TLS handshakes (and the hello after each) on one thread that
/// polls their sockets, as the node loop polls its peers' (<see cref="LoopFedStream"/>). A handshake
/// starts on this thread; each time its socket is readable the thread reads it into the
/// <c>SslStream</c>'s pending read, and the handshake goes on here, inline, until it hands the
/// connection over (to the node loop or to Kestrel) or ends. So no handshake holds a thread, and no
/// socket is ever waited on through .NET's socket engine, which would then wake its event thread
/// and a pool thread for every batch the node loop later reads from that connection (a follower
/// gets one per read round).
/// <para>
/// A handshake ends through its token (its timeout, or a newer connection taking its place,
/// <see cref="PeerTlsAcceptor"/>): the thread looks at the tokens at least every
/// <see cref="CancelCheck"/>, and fails the pending read of a cancelled one with
/// <see cref="OperationCanceledException"/>. Stopping fails every pending read with an
/// <see cref="IOException"/>, so each handshake closes its connection.
/// </para>
/// </summary>
public sealed class TlsHandshakePoller : IDisposable
{
    /// <summary>While handshakes are in progress the thread wakes at least this often to look at their tokens.</summary>
    public static readonly TimeSpan CancelCheck = TimeSpan.FromMilliseconds(50);

    private sealed class Handshake(LoopFedStream stream, CancellationToken cancel, Func<Task> run)
    {
        public LoopFedStream Stream { get; } = stream;
        public CancellationToken Cancel { get; } = cancel;
        public Func<Task> Run { get; } = run;
        /// <summary>Set on the poller's thread when it starts; complete once the connection is handed over or closed.</summary>
        public Task Task { get; set; } = Task.CompletedTask;
    }

    private readonly ConcurrentQueue<Handshake> _starting = new();
    private readonly List<Handshake> _running = new();
    private readonly Dictionary<Socket, Handshake> _bySocket = new();
    private readonly List<Socket> _readable = new();
    private readonly PollWakeup _wakeup = new();
    private readonly Thread _thread;
    private volatile bool _stopping;

    public TlsHandshakePoller()
    {
        _thread = new Thread(Poll) { IsBackground = true, Name = "raft-tls-accept" };
        _thread.Start();
    }

    /// <summary>
    /// Any thread: starts <paramref name="run"/> on the poller's thread, which from then on feeds
    /// <paramref name="stream"/> (<see cref="LoopFedStream.StartFeeding"/>) until the task ends. The
    /// task must not throw (it ends its own connection).
    /// </summary>
    public void Start(LoopFedStream stream, CancellationToken cancel, Func<Task> run)
    {
        _starting.Enqueue(new Handshake(stream, cancel, run));
        _wakeup.Wake();
    }

    private void Poll()
    {
        while (!_stopping)
        {
            while (_starting.TryDequeue(out var starting))
            {
                starting.Stream.StartFeeding();
                starting.Task = starting.Run(); // here until its first read waits
                _running.Add(starting);
            }
            foreach (var h in _running)
                if (!h.Task.IsCompleted && h.Cancel.IsCancellationRequested)
                    h.Stream.FailRead(new OperationCanceledException(h.Cancel));
            _running.RemoveAll(h => h.Task.IsCompleted);

            _readable.Clear();
            _bySocket.Clear();
            _readable.Add(_wakeup.Socket);
            foreach (var h in _running)
            {
                if (!h.Stream.ReadPending) continue;
                _readable.Add(h.Stream.Socket);
                _bySocket[h.Stream.Socket] = h;
            }
            Socket.Select(_readable, null, null, _running.Count > 0 ? (int)CancelCheck.TotalMicroseconds : -1);
            foreach (var socket in _readable)
            {
                if (socket == _wakeup.Socket)
                {
                    _wakeup.Drain();
                    continue;
                }
                var h = _bySocket[socket];
                if (!h.Task.IsCompleted) Feed(h);
            }
        }
        // Stopping: every handshake still waiting for bytes ends, and closes its connection.
        while (_starting.TryDequeue(out var never)) never.Stream.Dispose();
        foreach (var h in _running)
            if (!h.Task.IsCompleted) h.Stream.FailRead(new IOException("the node is stopping"));
        _running.Clear();
    }

    /// <summary>One non-blocking read into the handshake's pending read (which goes on inline); a broken connection fails that read.</summary>
    private static void Feed(Handshake h)
    {
        try
        {
            h.Stream.Receive();
        }
        catch (SocketException e)
        {
            h.Stream.FailRead(new IOException("the connection broke during the peer TLS handshake", e));
        }
    }

    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        _wakeup.Wake();
        if (Thread.CurrentThread != _thread) _thread.Join(TimeSpan.FromSeconds(5));
        _wakeup.Dispose();
    }
}
