using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace RaftPS.Bench;

/// <summary>
/// The floor under a put at C=1 on this machine (issue 26 asks how far p50 is from it): a put is
/// the client's round trip to the leader, and in parallel the leader's fsync and a follower's
/// (one peer round trip away: the leader sends before it fsyncs), so floor = client round trip +
/// peer round trip + fsync, the fsync taken with two writers on the disk at once. Measured here without RaftPS: the fsync of one small append to a preallocated
/// file (as the log does: one write and one fsync per batch), the same with two writers on the
/// same disk at once (leader and follower share this machine's disk), and a loopback TCP round trip
/// of a message of the same size. The client's gRPC round trip is not the TCP one: the bench's
/// stale get at C=1 (no consensus, served by the node at once) gives it.
/// </summary>
static class Floor
{
    const int FileBytes = 64 << 20;

    public static int Run(Args args)
    {
        string dir = args.Str("dir") ?? Path.Combine(Path.GetTempPath(), "raftps-floor-" + Guid.NewGuid().ToString("N")[..8]);
        int samples = args.Int("samples", 2000);
        int bytes = args.Int("bytes", 320);
        string? json = args.Str("json");
        args.CheckAllUsed();
        Directory.CreateDirectory(dir);
        try
        {
            var one = FsyncLatencies(dir, "a", samples, bytes);
            var two = ConcurrentFsyncLatencies(dir, samples, bytes);
            var rtt = LoopbackRoundTrips(samples, bytes);
            double leader = Percentile(one, 50), pair = Percentile(two, 50), peer = Percentile(rtt, 50);
            Console.WriteLine($"fsync of a {bytes} B append, one writer:        p50 {leader,8:F1} µs  p99 {Percentile(one, 99),8:F1} µs");
            Console.WriteLine($"fsync of a {bytes} B append, two writers:       p50 {pair,8:F1} µs  p99 {Percentile(two, 99),8:F1} µs");
            Console.WriteLine($"loopback TCP round trip of {bytes} B:           p50 {peer,8:F1} µs  p99 {Percentile(rtt, 99),8:F1} µs");
            double consensus = peer + pair;
            Console.WriteLine($"floor of a put's consensus part: round trip + fsync (two writers) = {consensus:F1} µs");
            Console.WriteLine("add the client's round trip (the bench's stale get at C=1, p50) for the whole put");
            Program.EmitJson(json, new Dictionary<string, object?>
            {
                ["kind"] = "floor", ["bytes"] = bytes, ["samples"] = samples, ["dir"] = dir,
                ["fsync_p50_us"] = leader, ["fsync_p99_us"] = Percentile(one, 99),
                ["fsync_two_writers_p50_us"] = pair, ["fsync_two_writers_p99_us"] = Percentile(two, 99),
                ["loopback_rtt_p50_us"] = peer, ["loopback_rtt_p99_us"] = Percentile(rtt, 99),
                ["consensus_floor_us"] = consensus,
            });
            return 0;
        }
        finally
        {
            if (args.Str("dir") is null) Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Appends <paramref name="bytes"/> and fsyncs, <paramref name="samples"/> times, into a
    /// file written through and fsynced first (so, like the log's preallocated segments, an append
    /// changes no block allocation).</summary>
    static double[] FsyncLatencies(string dir, string name, int samples, int bytes)
    {
        string path = Path.Combine(dir, name + ".wal");
        using var file = new FileStream(path, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);
        var zeros = new byte[1 << 20];
        for (int written = 0; written < FileBytes; written += zeros.Length) file.Write(zeros);
        file.Flush(flushToDisk: true);
        file.Position = 0;
        var record = new byte[bytes];
        Random.Shared.NextBytes(record);
        var latencies = new double[samples];
        for (int i = 0; i < samples && file.Position + bytes <= FileBytes; i++)
        {
            long start = Stopwatch.GetTimestamp();
            file.Write(record);
            file.Flush(flushToDisk: true);
            latencies[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
        }
        return latencies;
    }

    static double[] ConcurrentFsyncLatencies(string dir, int samples, int bytes)
    {
        double[] a = [], b = [];
        var first = new Thread(() => a = FsyncLatencies(dir, "b", samples, bytes));
        var second = new Thread(() => b = FsyncLatencies(dir, "c", samples, bytes));
        first.Start();
        second.Start();
        first.Join();
        second.Join();
        return [.. a, .. b];
    }

    /// <summary>Ping-pong of one message over a loopback TCP connection (Nagle off, as the peers'
    /// connections), the other end echoing on its own thread.</summary>
    static double[] LoopbackRoundTrips(int samples, int bytes)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        client.Connect(listener.LocalEndPoint!);
        using var server = listener.Accept();
        server.NoDelay = true;
        var echo = new Thread(() =>
        {
            var buffer = new byte[bytes];
            for (int i = 0; i < samples; i++)
            {
                ReceiveExactly(server, buffer);
                server.Send(buffer);
            }
        });
        echo.Start();
        var message = new byte[bytes];
        var reply = new byte[bytes];
        var latencies = new double[samples];
        for (int i = 0; i < samples; i++)
        {
            long start = Stopwatch.GetTimestamp();
            client.Send(message);
            ReceiveExactly(client, reply);
            latencies[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
        }
        echo.Join();
        return latencies;
    }

    static void ReceiveExactly(Socket socket, byte[] buffer)
    {
        for (int got = 0; got < buffer.Length;)
        {
            int n = socket.Receive(buffer, got, buffer.Length - got, SocketFlags.None);
            if (n == 0) throw new IOException("the echo connection closed early");
            got += n;
        }
    }

    static double Percentile(double[] sorted, double p)
    {
        var copy = sorted.Where(v => v > 0).Order().ToArray();
        if (copy.Length == 0) return double.NaN;
        return copy[Math.Min(copy.Length - 1, (int)Math.Ceiling(p / 100 * copy.Length) - 1)];
    }
}
