using System.Diagnostics;
using System.Net.Sockets;
using Grpc.Core;
using Grpc.Net.Client;
using RaftPS.Protocol;
using RaftServer.Tests.Integration;

namespace RaftServer.Tests.NetworkFaults;

/// <summary>
/// A cluster of real RaftServer processes, each in its own namespace of a <see cref="NetworkLab"/>,
/// bound to its namespace's address from its config.conf (<c>ID 198.18.0.1x 7000</c>). The test
/// talks to the nodes from the lab's client namespace (<see cref="Channel"/>). Dispose kills the
/// servers and removes the lab and the data.
/// </summary>
internal sealed class LabCluster : IDisposable
{
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private readonly Dictionary<int, ServerProcess> _running = new();
    private readonly List<ServerProcess> _exited = new();
    private readonly NamespaceThread _clientNamespace;
    private readonly IReadOnlyDictionary<string, string> _environment;
    private readonly string[] _extraArgs;
    private readonly bool _allowSuspend;

    public NetworkLab Lab { get; }
    public LinkRelay Relay { get; }
    public string Dir { get; }
    public string ConfigPath { get; }
    public int Size => Lab.Size;
    public IReadOnlyList<int> Ids => Enumerable.Range(0, Size).ToList();

    public LabCluster(int size, IReadOnlyDictionary<string, string>? environment = null, params string[] extraArgs)
        : this(size, environment, allowSuspend: true, extraArgs)
    {
    }

    /// <param name="allowSuspend">Whether the nodes run with --allow-suspend (the Suspend fault needs it).</param>
    public LabCluster(int size, IReadOnlyDictionary<string, string>? environment, bool allowSuspend, params string[] extraArgs)
        : this(size, environment, allowSuspend, null, extraArgs)
    {
    }

    /// <param name="nodeArgs">Arguments of one node's own (after <paramref name="extraArgs"/>), e.g. its peer TLS certificate.</param>
    public LabCluster(int size, IReadOnlyDictionary<string, string>? environment, bool allowSuspend, Func<int, string[]>? nodeArgs, params string[] extraArgs)
    {
        _allowSuspend = allowSuspend;
        _nodeArgs = nodeArgs;
        _environment = environment ?? new Dictionary<string, string>();
        _extraArgs = extraArgs;
        Lab = new NetworkLab(size);
        try
        {
            _clientNamespace = new NamespaceThread(Lab.ClientNamespace);
            Relay = new LinkRelay(Lab);
            Dir = ServerProcess.TempDir("netfault");
            ConfigPath = Path.Combine(Dir, "config.conf");
            File.WriteAllLines(ConfigPath, Ids.Select(i => $"{i} {NetworkLab.NodeAddress(i)} {NetworkLab.NodePort}"));
            foreach (var id in Ids) Start(id);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private readonly Func<int, string[]>? _nodeArgs;

    public string DataDir(int id) => Path.Combine(Dir, "data", $"node-{id}");

    public void Start(int id)
    {
        var p = ServerProcess.StartIn(Lab.NodeNamespace(id), id, Dir,
            [id.ToString(), "--config", ConfigPath, "--data-dir", DataDir(id), "--quiet", .. (_allowSuspend ? ["--allow-suspend"] : Array.Empty<string>()), .. _extraArgs, .. _nodeArgs?.Invoke(id) ?? []], _environment, () => Workload.NowUs / 1000);
        lock (_running) _running[id] = p;
    }

    public ServerProcess Process(int id)
    {
        lock (_running) return _running[id];
    }

    /// <summary>kill -9.</summary>
    public void Kill(int id)
    {
        ServerProcess? p;
        lock (_running)
        {
            if (!_running.Remove(id, out p)) return;
            _exited.Add(p);
        }
        p.Kill();
    }

    public IReadOnlyList<int> Running
    {
        get { lock (_running) return _running.Keys.Order().ToList(); }
    }

    /// <summary>
    /// A gRPC channel to a node whose connections are made in the client namespace: a socket
    /// belongs to the namespace it was created in, so each one is created on that namespace's
    /// thread and then used from anywhere.
    /// </summary>
    public GrpcChannel Channel(int node)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(1),
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            EnableMultipleHttp2Connections = true,
            ConnectCallback = async (context, ct) =>
            {
                var socket = _clientNamespace.Invoke(() => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true });
                try
                {
                    await socket.ConnectAsync(System.Net.IPAddress.Parse(context.DnsEndPoint.Host), context.DnsEndPoint.Port, ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        return GrpcChannel.ForAddress($"http://{NetworkLab.NodeAddress(node)}:{NetworkLab.NodePort}",
            new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true });
    }

    private GrpcChannel[]? _adminChannels;

    /// <summary>The harness's own client of a node (leader queries, probes, suspend), not the history's.</summary>
    public RaftClient.RaftClientClient Admin(int node)
    {
        lock (_running) _adminChannels ??= Ids.Select(Channel).ToArray();
        return new RaftClient.RaftClientClient(_adminChannels[node]);
    }

    /// <summary>The leader node <paramref name="node"/> names, or null (none known, or it did not answer within 0.5 s).</summary>
    public async Task<int?> LeaderSeenBy(int node)
    {
        try
        {
            var r = await Admin(node).GetLeaderAsync(new GetLeaderRequest(), deadline: DateTime.UtcNow.AddMilliseconds(500));
            return r.Leader.Id;
        }
        catch (RpcException)
        {
            return null;
        }
    }

    /// <summary>Waits until every running node names the same leader; returns it.</summary>
    public async Task<int> WaitForLeaderAsync(TimeSpan? patience = null)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < (patience ?? Patience))
        {
            var seen = await Task.WhenAll(Running.Select(LeaderSeenBy));
            if (seen.All(s => s is not null) && seen.Distinct().Count() == 1 && Running.Contains(seen[0]!.Value)) return seen[0]!.Value;
            await Task.Delay(20);
        }
        throw new TimeoutException($"the nodes did not agree on a leader within {patience ?? Patience}\n{Outputs()}");
    }

    public string Outputs()
    {
        lock (_running)
            return string.Join("\n", _running.Values.Concat(_exited).Select(p => $"--- node {p.Id} ---\n{Tail(p.Output, 200)}"));
    }

    private static string Tail(string text, int lines)
    {
        var all = text.Split('\n');
        return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
    }

    public void Dispose()
    {
        lock (_running)
        {
            foreach (var p in _running.Values.Concat(_exited)) p.Dispose();
            _running.Clear();
        }
        foreach (var ch in _adminChannels ?? []) ch.Dispose();
        Relay?.Dispose();
        _clientNamespace?.Dispose();
        Lab.Dispose();
        if (Dir is not null)
            try { Directory.Delete(Dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
