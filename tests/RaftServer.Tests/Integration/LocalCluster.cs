using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using RaftPS.Protocol;

namespace RaftServer.Tests.Integration;

/// <summary>
/// A cluster of real RaftServer processes on free loopback ports, in a temp folder with its own
/// config.conf and data directories. Dispose kills every process and removes the folder.
/// </summary>
public sealed class LocalCluster : IAsyncDisposable
{
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private readonly Dictionary<int, ServerProcess> _processes = new();
    private readonly Dictionary<int, GrpcChannel> _channels = new();
    private readonly List<ServerProcess> _dead = new();

    private readonly Dictionary<int, int> _ports;

    public string Dir { get; }
    public string ConfigPath { get; }
    /// <summary>Every node's port: config.conf's and those of nodes started later with <see cref="StartJoining"/>.</summary>
    public IReadOnlyDictionary<int, int> Ports => _ports;
    public IReadOnlyList<int> Ids => Ports.Keys.Order().ToList();
    public string[] ExtraArgs { get; }
    /// <summary>Arguments of one node's own (after <see cref="ExtraArgs"/>), e.g. its metrics port.</summary>
    public Func<int, string[]>? NodeArgs { get; init; }

    /// <summary>The address every node listens on (config.conf's HOST).</summary>
    public string Host { get; }

    public LocalCluster(int size, string name, params string[] extraArgs) : this("127.0.0.1", size, name, extraArgs) { }

    /// <param name="host">The nodes' address: 127.0.0.1, or ::1 for a cluster on IPv6.</param>
    public LocalCluster(string host, int size, string name, params string[] extraArgs)
    {
        Host = host;
        Dir = ServerProcess.TempDir(name);
        var ports = ServerProcess.FreePorts(size);
        _ports = Enumerable.Range(0, size).ToDictionary(i => i, i => ports[i]);
        ConfigPath = ServerProcess.WriteConfig(Dir, Ports.Select(p => (p.Key, p.Value)), host);
        ExtraArgs = extraArgs;
    }

    /// <summary>"host:port" of node <paramref name="id"/>, an IPv6 host in brackets.</summary>
    public string Authority(int id) => RaftServer.Cluster.NodeAddress.Format(Host, Ports[id]);

    public string DataDir(int id) => Path.Combine(Dir, "data", $"node-{id}");

    public static async Task<LocalCluster> StartAsync(int size, string name, params string[] extraArgs)
    {
        var cluster = new LocalCluster(size, name, extraArgs);
        foreach (var id in cluster.Ids) cluster.Start(id);
        return cluster;
    }

    public ServerProcess Start(int id)
    {
        var p = ServerProcess.Start(id, Dir, [id.ToString(), "--config", ConfigPath, .. ExtraArgs, .. NodeArgs?.Invoke(id) ?? []]);
        lock (_processes) _processes[id] = p;
        return p;
    }

    /// <summary>A port for a node that is not in config.conf (to be added to the cluster).</summary>
    public int NewPort(int id)
    {
        var port = ServerProcess.FreePorts(1)[0];
        while (_ports.ContainsValue(port)) port = ServerProcess.FreePorts(1)[0];
        lock (_processes) _ports[id] = port;
        return port;
    }

    /// <summary>Starts node <paramref name="id"/> (already added to the cluster) with --join through <paramref name="through"/>.</summary>
    public ServerProcess StartJoining(int id, int through)
    {
        var p = ServerProcess.Start(id, Dir, [id.ToString(), "--join", Authority(through), "--data-dir", DataDir(id), .. ExtraArgs]);
        lock (_processes) _processes[id] = p;
        return p;
    }

    public ServerProcess Process(int id)
    {
        lock (_processes) return _processes[id];
    }

    public void Kill(int id)
    {
        ServerProcess? p;
        lock (_processes)
        {
            if (!_processes.Remove(id, out p)) return;
            _dead.Add(p);
        }
        p.Kill();
    }

    public RaftClient.RaftClientClient Client(int id)
    {
        GrpcChannel? ch;
        lock (_channels) // tests call from several tasks at once
            if (!_channels.TryGetValue(id, out ch))
                _channels[id] = ch = GrpcChannel.ForAddress($"http://{Authority(id)}");
        return new RaftClient.RaftClientClient(ch);
    }

    /// <summary>The ids of the running nodes (a copy: safe while other tasks kill and start nodes).</summary>
    public IReadOnlyList<int> Running
    {
        get { lock (_processes) return _processes.Keys.Order().ToList(); }
    }

    /// <summary>Waits until every running node (or those given) reports the same leader; returns it.</summary>
    public async Task<int> WaitForLeaderAsync(IEnumerable<int>? among = null, int? not = null)
    {
        var nodes = (among ?? Running).ToList();
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < Patience)
        {
            var seen = new HashSet<int>();
            var ok = true;
            foreach (var id in nodes)
            {
                try
                {
                    var r = await Client(id).GetLeaderAsync(new GetLeaderRequest(), deadline: DateTime.UtcNow.AddSeconds(2));
                    seen.Add(r.Leader.Id);
                }
                catch (RpcException)
                {
                    ok = false;
                    break;
                }
            }
            if (ok && seen.Count == 1 && nodes.Contains(seen.First()) && seen.First() != not) return seen.First();
            await Task.Delay(25);
        }
        throw new TimeoutException($"no agreed leader among {string.Join(",", nodes)} within {Patience}\n{Outputs()}");
    }

    /// <summary>Retries a call while it fails with Unavailable (as a client would), up to <see cref="Patience"/>.</summary>
    public static async Task<T> RetryAsync<T>(Func<Task<T>> call)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return await call();
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded && sw.Elapsed < Patience)
            {
                await Task.Delay(50);
            }
        }
    }

    public Task<SetReply> SetAsync(int node, string key, string value, ulong clientId = 0, ulong sequence = 0) =>
        RetryAsync(() => Client(node).SetAsync(new SetRequest { Key = key, Value = ByteString.CopyFromUtf8(value), ClientId = clientId, Sequence = sequence },
            deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync);

    public async Task<string?> GetAsync(int node, string key, bool stale = false)
    {
        var r = await RetryAsync(() => Client(node).GetAsync(new GetRequest { Key = key, Stale = stale }, deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync);
        return r.Found ? r.Value.ToStringUtf8() : null;
    }

    public async Task<StatusReply> StatusAsync(int node) =>
        await RetryAsync(() => Client(node).StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync);

    /// <summary>Waits until <paramref name="node"/> has applied at least <paramref name="index"/>.</summary>
    public async Task WaitForAppliedAsync(int node, long index)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < Patience)
        {
            try
            {
                if ((await Client(node).StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(2))).AppliedIndex >= index) return;
            }
            catch (RpcException) { }
            await Task.Delay(25);
        }
        throw new TimeoutException($"node {node} did not apply index {index} within {Patience}\n{Outputs()}");
    }

    public string Outputs()
    {
        lock (_processes) return string.Join("\n", _processes.Values.Concat(_dead).Select(p => $"--- node {p.Id} ---\n{p.Output}"));
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var p in _processes.Values.Concat(_dead)) p.Dispose();
        foreach (var ch in _channels.Values) ch.Dispose();
        await Task.Yield();
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
