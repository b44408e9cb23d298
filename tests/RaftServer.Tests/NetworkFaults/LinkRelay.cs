using System.Diagnostics;

namespace RaftServer.Tests.NetworkFaults;

/// <summary>
/// Delay and loss on the links between nodes, in user space: this kernel has no netem qdisc
/// (sch_netem is not built and cannot be loaded), so the lab does what netem does itself. Each
/// node's namespace has a TUN device "rly"; while the fault is on, a /32 route per peer sends the
/// node's packets for its peers into that device instead of eth0. The relay reads each IP packet
/// there, drops it with the given probability, and otherwise hands it, after the given delay, to
/// the TUN device of the namespace it is addressed to, whose kernel takes it as received. So TCP
/// sees real loss (retransmissions, back-off) and real round trips; the clients' links to the
/// nodes are not touched. Packets keep their order (a fixed delay, no jitter).
/// </summary>
internal sealed class LinkRelay : IDisposable
{
    private const string Device = "rly";
    private readonly NetworkLab _lab;
    private readonly int[] _fds;
    private readonly Thread[] _readers;
    private readonly Thread _deliverer;
    private readonly PriorityQueue<(int To, byte[] Packet), long> _due = new();
    private readonly object _gate = new(); // Monitor.Wait needs an object, not a Lock
    private volatile bool _stopping;
    private volatile bool _on;
    private long _delayTicks;
    private double _loss;
    private Random _random = new(0);

    public long Relayed;
    public long Dropped;

    public LinkRelay(NetworkLab lab)
    {
        _lab = lab;
        _fds = new int[lab.Size];
        for (var i = 0; i < lab.Size; i++)
        {
            using var thread = new NamespaceThread(lab.NodeNamespace(i));
            _fds[i] = thread.Invoke(() => Native.OpenTun(Device));
            NetworkLab.Batch(lab.NodeNamespace(i), $"link set {Device} up");
        }
        _readers = Enumerable.Range(0, lab.Size).Select(i => new Thread(() => Read(i)) { IsBackground = true, Name = $"relay n{i}" }).ToArray();
        foreach (var t in _readers) t.Start();
        _deliverer = new Thread(Deliver) { IsBackground = true, Name = "relay delivery" };
        _deliverer.Start();
    }

    /// <summary>Starts delaying (one way, per packet) and dropping packets between every two nodes.</summary>
    public void Start(TimeSpan delay, double loss, int seed)
    {
        lock (_gate)
        {
            _delayTicks = (long)(delay.TotalSeconds * Stopwatch.Frequency);
            _loss = loss;
            _random = new Random(seed);
        }
        _on = true;
        for (var i = 0; i < _lab.Size; i++)
        {
            var routes = Enumerable.Range(0, _lab.Size).Where(j => j != i)
                .Select(j => $"route replace {NetworkLab.NodeAddress(j)}/32 dev {Device} src {NetworkLab.NodeAddress(i)}").ToArray();
            NetworkLab.Batch(_lab.NodeNamespace(i), routes);
        }
    }

    /// <summary>Back to the plain links (packets already in the relay are still delivered, as from a netem queue).</summary>
    public void Stop()
    {
        for (var i = 0; i < _lab.Size; i++)
        {
            var routes = Enumerable.Range(0, _lab.Size).Where(j => j != i)
                .Select(j => $"route del {NetworkLab.NodeAddress(j)}/32 dev {Device}").ToArray();
            NetworkLab.Batch(_lab.NodeNamespace(i), routes);
        }
        _on = false;
    }

    private void Read(int from)
    {
        var buffer = new byte[65536];
        while (!_stopping)
        {
            int n;
            try
            {
                n = Native.ReadPacket(_fds[from], buffer, 50);
            }
            catch (System.ComponentModel.Win32Exception)
            {
                return; // the device is gone (the lab is being removed)
            }
            if (n < 20 || (buffer[0] >> 4) != 4) continue; // IPv4 only (the lab has no other)
            // The destination address, bytes 16-19: one of the lab's nodes, 198.18.0.(10 + id).
            var to = buffer[19] - 10;
            if (buffer[16] != 198 || buffer[17] != 18 || buffer[18] != 0 || to < 0 || to >= _fds.Length || to == from) continue;
            var packet = buffer.AsSpan(0, n).ToArray();
            lock (_gate)
            {
                if (_on && _random.NextDouble() < _loss)
                {
                    Dropped++;
                    continue;
                }
                _due.Enqueue((to, packet), Stopwatch.GetTimestamp() + (_on ? _delayTicks : 0));
                Relayed++;
                Monitor.PulseAll(_gate);
            }
        }
    }

    private void Deliver()
    {
        while (!_stopping)
        {
            (int To, byte[] Packet) next;
            lock (_gate)
            {
                if (!_due.TryPeek(out next, out var due))
                {
                    Monitor.Wait(_gate, 50);
                    continue;
                }
                var wait = due - Stopwatch.GetTimestamp();
                if (wait > 0)
                {
                    Monitor.Wait(_gate, TimeSpan.FromSeconds((double)wait / Stopwatch.Frequency));
                    continue;
                }
                _due.Dequeue();
            }
            Native.WritePacket(_fds[next.To], next.Packet);
        }
    }

    public void Dispose()
    {
        _stopping = true;
        lock (_gate) Monitor.PulseAll(_gate);
        foreach (var t in _readers) t.Join(TimeSpan.FromSeconds(2));
        _deliverer.Join(TimeSpan.FromSeconds(2));
        foreach (var fd in _fds) Native.Close(fd);
    }
}
