using System.Diagnostics;
using System.Net;
using System.Text;

namespace RaftServer.Tests.NetworkFaults;

/// <summary>
/// A private network made for one test run, out of Linux network namespaces:
/// <code>
///   ns &lt;run&gt;-sw   bridge br0 ── sw-n0 ═ eth0 (ns &lt;run&gt;-n0, 198.18.0.10)
///                           ── sw-n1 ═ eth0 (ns &lt;run&gt;-n1, 198.18.0.11) ...
///                           ── sw-cl ═ eth0 (ns &lt;run&gt;-cl, 198.18.0.2: the test's clients)
/// </code>
/// The bridge lives in a namespace of its own, so the run adds nothing to the host's namespace
/// (no interface, no route, no rule) and no namespace of the run has a route anywhere else: the
/// tests can only ever reach the run's own addresses (198.18.0.0/15 is the benchmarking range,
/// RFC 2544; each run is its own isolated segment, so runs side by side may reuse it).
/// Faults are nftables rules in the switch's bridge (<see cref="ApplyDrops"/>): a dropped packet
/// just vanishes, as on a real network (no refusal, no reset).
/// Everything is removed by <see cref="Dispose"/>, and by a guard process if this process dies
/// first; a run also removes what dead runs left (<see cref="SweepStale"/>).
/// </summary>
internal sealed class NetworkLab : IDisposable
{
    public const string Prefix = "rpsnf";
    public const int NodePort = 7000;
    public static readonly IPAddress ClientAddress = IPAddress.Parse("198.18.0.2");

    private readonly Process _guard;
    private bool _disposed;

    /// <summary>"rpsnf-&lt;pid&gt;-&lt;random&gt;": the prefix of every namespace of this run.</summary>
    public string RunName { get; }
    public string Switch => $"{RunName}-sw";
    public string ClientNamespace => $"{RunName}-cl";
    public int Size { get; }

    public string NodeNamespace(int id) => $"{RunName}-n{id}";
    public static IPAddress NodeAddress(int id) => IPAddress.Parse($"198.18.0.{10 + id}");

    /// <summary>Why the lab cannot run here, or null when it can: Linux, root, ip and nft present,
    /// and a namespace can be made. Asked once per test run.</summary>
    public static string? Unavailable => LazyUnavailable.Value;

    private static readonly Lazy<string?> LazyUnavailable = new(Probe);

    private static string? Probe()
    {
        if (!OperatingSystem.IsLinux()) return "network fault tests need Linux network namespaces (this is not Linux)";
        if (!Native.IsRoot) return "network fault tests need root (ip netns, nftables); run the tests as root to include them";
        foreach (var tool in new[] { "ip", "nft" })
            if (Which(tool) is null)
                return $"network fault tests need '{tool}' (Debian packages iproute2 and nftables; build.ps1 test installs them when it runs as root)";
        var probe = $"{Prefix}-{Environment.ProcessId}-probe";
        var (code, output) = Run("ip", $"netns add {probe}");
        if (code != 0) return $"cannot make a network namespace here: {output.Trim()}";
        Run("ip", $"netns delete {probe}");
        return null;
    }

    private static string? Which(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").Split(':')
            .Concat(["/usr/sbin", "/sbin"])
            .Select(dir => Path.Combine(dir, tool))
            .FirstOrDefault(File.Exists);

    public NetworkLab(int size)
    {
        Size = size;
        RunName = $"{Prefix}-{Environment.ProcessId}-{Random.Shared.Next(0x10000):x4}";
        SweepStale();
        // The guard first: from here on, whatever this run makes is removed even if it dies.
        _guard = StartGuard(RunName);
        try
        {
            Build();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private void Build()
    {
        Must("ip", $"netns add {Switch}");
        Must("ip", $"netns add {ClientNamespace}");
        for (var i = 0; i < Size; i++) Must("ip", $"netns add {NodeNamespace(i)}");

        Batch(Switch, "link set lo up", "link add br0 type bridge", "link set br0 up");
        Attach("cl", ClientNamespace, ClientAddress);
        for (var i = 0; i < Size; i++) Attach($"n{i}", NodeNamespace(i), NodeAddress(i));

        // The fault table: a bridge filter on the switch (node-to-node frames cross its forward
        // hook; the client's frames too, but no rule names the client's address).
        Nft(Switch, """
            table bridge raftps {
              chain faults { type filter hook forward priority 0; policy accept; }
            }
            """);
    }

    /// <summary>A veth pair from the switch's bridge to <paramref name="ns"/>'s eth0, with its address.</summary>
    private void Attach(string port, string ns, IPAddress address)
    {
        Must("ip", $"link add sw-{port} netns {Switch} type veth peer name eth0 netns {ns}");
        Batch(Switch, $"link set sw-{port} master br0", $"link set sw-{port} up");
        Batch(ns, "link set lo up", $"addr add {address}/24 dev eth0", "link set eth0 up");
        // Reverse-path filtering off: during delay faults, a peer's packets arrive on the relay's
        // TUN device while the route back to it may say eth0 (LinkRelay).
        Must("ip", $"netns exec {ns} sysctl -q -w net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0");
        if (Environment.GetEnvironmentVariable("RAFTPS_NETFAULT_SYSCTL") is { Length: > 0 } extra) Must("ip", $"netns exec {ns} sysctl -q -w {extra}");
    }

    /// <summary>
    /// Replaces the fault rules: every packet from the first address of a pair to the second is
    /// dropped (one rule per direction; a two-way cut is two pairs). An empty list heals.
    /// </summary>
    public void ApplyDrops(IEnumerable<(int From, int To)> drops)
    {
        var script = new StringBuilder("flush chain bridge raftps faults\n");
        foreach (var (from, to) in drops.Distinct())
            script.Append($"add rule bridge raftps faults ip saddr {NodeAddress(from)} ip daddr {NodeAddress(to)} drop\n");
        Nft(Switch, script.ToString()); // one transaction: the whole fault starts (or heals) at once
    }

    public void Nft(string ns, string script)
    {
        var (code, output) = Run("ip", $"netns exec {ns} nft -f -", script);
        if (code != 0) throw new InvalidOperationException($"nft in {ns} failed ({code}): {output}\n{script}");
    }

    /// <summary>Runs <c>ip -n ns -batch -</c> with these commands.</summary>
    public static void Batch(string ns, params string[] commands)
    {
        var (code, output) = Run("ip", $"-n {ns} -batch -", string.Join('\n', commands) + "\n");
        if (code != 0) throw new InvalidOperationException($"ip -n {ns} failed ({code}): {output}\n{string.Join('\n', commands)}");
    }

    public static void Must(string file, string arguments)
    {
        var (code, output) = Run(file, arguments);
        if (code != 0) throw new InvalidOperationException($"{file} {arguments} failed ({code}): {output}");
    }

    public static (int Code, string Output) Run(string file, string arguments, string? input = null)
    {
        var psi = new ProcessStartInfo(file, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = input is not null,
            UseShellExecute = false,
        };
        using var p = Process.Start(psi)!;
        if (input is not null)
        {
            p.StandardInput.Write(input);
            p.StandardInput.Close();
        }
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(30_000))
        {
            p.Kill(entireProcessTree: true);
            return (-1, $"{file} {arguments}: no answer within 30 s");
        }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    /// <summary>
    /// The shell lines that remove a run's namespaces: kill every process inside each (the
    /// servers; nothing else runs there), then delete the namespace (its veth ends, the bridge,
    /// the rules and any TUN device go with it).
    /// </summary>
    private static string RemovalScript(string pattern) => $$"""
        for ns in $(ip netns list | awk '{print $1}' | grep -E '{{pattern}}'); do
          for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
          ip netns delete "$ns" 2>/dev/null
        done
        """;

    /// <summary>
    /// A process in a session of its own (setsid -f: not a child of this one, so no process-tree
    /// kill of the test host reaches it) that waits on a pipe from this process: the pipe closes
    /// when this process ends for any reason, kill -9 included; it then removes the run's namespaces.
    /// </summary>
    private static Process StartGuard(string run)
    {
        var script = "read -r _ || true\n" + RemovalScript($"^{run}-");
        var psi = new ProcessStartInfo("setsid", ["-f", "bash", "-c", script])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = false,
            RedirectStandardError = false,
            UseShellExecute = false,
        };
        return Process.Start(psi)!;
    }

    /// <summary>Removes the namespaces of runs whose process is gone (its guard was killed too, or the machine stopped).</summary>
    public static void SweepStale()
    {
        var (_, list) = Run("ip", "netns list");
        foreach (var line in list.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var name = line.Split(' ')[0];
            var parts = name.Split('-');
            if (parts.Length < 3 || parts[0] != Prefix || !int.TryParse(parts[1], out var pid)) continue;
            if (pid == Environment.ProcessId || Directory.Exists($"/proc/{pid}")) continue;
            Run("bash", "-s", RemovalScript($"^{Prefix}-{pid}-"));
        }
    }

    /// <summary>The namespaces this run still has (for the tests of the lab itself).</summary>
    public static IReadOnlyList<string> Namespaces(string run)
    {
        var (_, list) = Run("ip", "netns list");
        return list.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[0])
            .Where(n => n.StartsWith(run + "-", StringComparison.Ordinal)).ToList();
    }

    /// <summary>Closes the guard's pipe and removes nothing, as this process dying would: the guard must clean up.</summary>
    internal void AbandonForTest()
    {
        _disposed = true;
        _guard.StandardInput.Close();
        _guard.Dispose();
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Run("bash", "-s", RemovalScript($"^{RunName}-"));
        try
        {
            _guard.StandardInput.Close(); // the guard wakes, finds nothing left, and exits
        }
        catch (IOException) { }
        _guard.Dispose();
    }
}
