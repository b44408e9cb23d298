using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using E = RaftPS.Bench.Etcd;
using R = RaftPS.Protocol;

namespace RaftPS.Bench;

/// <summary>Which node leads, and in which term, as one node sees it.</summary>
readonly record struct LeaderView(int LeaderIndex, long Term);

/// <summary>One system under test. The driver only ever talks to it through this.</summary>
interface ITarget : IDisposable
{
    string Kind { get; }
    IReadOnlyList<Endpoint> Endpoints { get; }

    /// <summary>A worker's own session on node <paramref name="endpoint"/>: its reusable request objects
    /// bound to one channel of the pool. Not thread-safe; a closed-loop worker has one call in flight.</summary>
    IWorker CreateWorker(int endpoint, int workerIndex);

    /// <summary>Asks node <paramref name="endpoint"/> who leads (index into Endpoints, -1 unknown) and the term.</summary>
    Task<LeaderView> GetLeaderAsync(int endpoint, TimeSpan timeout, CancellationToken ct);

    /// <summary>Between runs: etcd compacts its history (its store keeps every revision otherwise).</summary>
    Task BetweenRunsAsync(int endpoint, CancellationToken ct);
}

static class ReadMode
{
    /// <summary>Serializable/stale reads (etcd serializable=true, RaftPS stale=true) instead of linearizable: diagnostics only.</summary>
    public static bool Stale;
}

interface IWorker
{
    Task PutAsync(int key, DateTime? deadline, CancellationToken ct);
    /// <summary>A linearizable read; true when the key was found.</summary>
    Task<bool> GetAsync(int key, DateTime? deadline, CancellationToken ct);
}

/// <summary>The key space and the value, shared by every target so they store the same bytes.</summary>
static class Keys
{
    public const int ValueSize = 256;

    /// <summary>Key i; values other than 256 bytes get a key space of their own, so runs with different
    /// value sizes on one cluster never read each other's values.</summary>
    public static string Name(int i, int valueBytes = ValueSize) =>
        valueBytes == ValueSize ? $"bench/key-{i:D5}" : $"bench/v{valueBytes}/key-{i:D5}";

    public static byte[] MakeValue(int size = ValueSize)
    {
        var value = new byte[size];
        new Random(42).NextBytes(value);
        return value;
    }

    /// <summary>Keys and values of keys 0..count-1 in bytes (UTF-8 keys): the live data a store must hold.</summary>
    public static long LiveBytes(int count, int valueBytes)
    {
        long total = 0;
        for (int i = 0; i < count; i++) total += Encoding.UTF8.GetByteCount(Name(i, valueBytes)) + valueBytes;
        return total;
    }
}

/// <summary>
/// Exactly <c>perEndpoint</c> HTTP/2 connections to each node: one GrpcChannel, with its own
/// SocketsHttpHandler, per connection, and EnableMultipleHttp2Connections off so a handler never
/// opens a second connection when a connection's streams are all in use (calls beyond the server's
/// MAX_CONCURRENT_STREAMS wait in the handler instead). Workers are spread over the connections
/// round robin. A connection is opened by its first call.
/// </summary>
sealed class ChannelPool : IDisposable
{
    readonly GrpcChannel[][] _channels;

    /// <param name="tlsCa">Not null: the nodes serve clients over TLS with certificates of this CA (https, checked against it alone).</param>
    public ChannelPool(IReadOnlyList<Endpoint> endpoints, int perEndpoint, TimeSpan connectTimeout, X509Certificate2? tlsCa = null)
    {
        _channels = new GrpcChannel[endpoints.Count][];
        for (int e = 0; e < endpoints.Count; e++)
        {
            _channels[e] = new GrpcChannel[perEndpoint];
            for (int c = 0; c < perEndpoint; c++)
            {
                var handler = new SocketsHttpHandler
                {
                    EnableMultipleHttp2Connections = false,
                    PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
                    ConnectTimeout = connectTimeout,
                    AutomaticDecompression = DecompressionMethods.None,
                    UseProxy = false,
                    UseCookies = false,
                };
                if (tlsCa is not null)
                {
                    handler.SslOptions = new SslClientAuthenticationOptions
                    {
                        RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                        {
                            if (certificate is null) return false;
                            using var chain = new X509Chain();
                            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                            chain.ChainPolicy.CustomTrustStore.Add(tlsCa);
                            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                            return chain.Build(new X509Certificate2(certificate));
                        },
                    };
                }
                var uri = tlsCa is null ? endpoints[e].Uri : new Uri($"https://{endpoints[e]}");
                _channels[e][c] = GrpcChannel.ForAddress(uri, new GrpcChannelOptions
                {
                    HttpHandler = handler,
                    DisposeHttpClient = true,
                    MaxReceiveMessageSize = 16 * 1024 * 1024,
                });
            }
        }
    }

    public GrpcChannel Get(int endpoint, int worker) => _channels[endpoint][worker % _channels[endpoint].Length];

    public int PerEndpoint => _channels[0].Length;

    public void Dispose()
    {
        foreach (var row in _channels) foreach (var ch in row) ch.Dispose();
    }
}

sealed class RaftPsTarget : ITarget
{
    readonly ChannelPool _pool;
    readonly string[] _keys;
    readonly ByteString _value;

    readonly int _valueBytes;

    public RaftPsTarget(IReadOnlyList<Endpoint> endpoints, int channelsPerEndpoint, int keyCount, int valueBytes, TimeSpan connectTimeout, X509Certificate2? tlsCa = null)
    {
        Endpoints = endpoints;
        _pool = new ChannelPool(endpoints, channelsPerEndpoint, connectTimeout, tlsCa);
        _keys = new string[keyCount];
        for (int i = 0; i < keyCount; i++) _keys[i] = Keys.Name(i, valueBytes);
        _valueBytes = valueBytes;
        _value = ByteString.CopyFrom(Keys.MakeValue(valueBytes));
    }

    public string Kind => "raftps";
    public IReadOnlyList<Endpoint> Endpoints { get; }

    public IWorker CreateWorker(int endpoint, int workerIndex) => new Worker(new R.RaftClient.RaftClientClient(_pool.Get(endpoint, workerIndex)), this);

    public async Task<LeaderView> GetLeaderAsync(int endpoint, TimeSpan timeout, CancellationToken ct)
    {
        var client = new R.RaftClient.RaftClientClient(_pool.Get(endpoint, 0));
        R.NodeInfo? leader;
        long term;
        try
        {
            var status = await client.StatusAsync(new R.StatusRequest(), deadline: DateTime.UtcNow + timeout, cancellationToken: ct);
            leader = status.Leader; term = status.Term;
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Unimplemented)
        {
            var reply = await client.GetLeaderAsync(new R.GetLeaderRequest(), deadline: DateTime.UtcNow + timeout, cancellationToken: ct);
            leader = reply.Leader; term = reply.Term;
        }
        int index = -1;
        if (leader is not null)
            for (int i = 0; i < Endpoints.Count; i++)
                if (Endpoints[i].Port == leader.Port && SameHost(Endpoints[i].Host, leader.Address)) index = i;
        return new LeaderView(index, term);
    }

    static bool SameHost(string a, string b) =>
        a == b || (Endpoint.IsLoopback(a) && Endpoint.IsLoopback(b));

    public Task BetweenRunsAsync(int endpoint, CancellationToken ct) => Task.CompletedTask;

    public void Dispose() => _pool.Dispose();

    sealed class Worker(R.RaftClient.RaftClientClient client, RaftPsTarget target) : IWorker
    {
        // Reused: a closed-loop worker has one call in flight, and a unary call has serialized its
        // request before its response can arrive.
        readonly R.SetRequest _set = new() { Value = target._value };
        readonly R.GetRequest _get = new() { Stale = ReadMode.Stale };

        public Task PutAsync(int key, DateTime? deadline, CancellationToken ct)
        {
            _set.Key = target._keys[key];
            return client.SetAsync(_set, deadline: deadline, cancellationToken: ct).ResponseAsync;
        }

        public async Task<bool> GetAsync(int key, DateTime? deadline, CancellationToken ct)
        {
            _get.Key = target._keys[key];
            var reply = await client.GetAsync(_get, deadline: deadline, cancellationToken: ct).ResponseAsync.ConfigureAwait(false);
            return reply.Found && reply.Value.Length == target._valueBytes;
        }
    }
}

sealed class EtcdTarget : ITarget
{
    readonly ChannelPool _pool;
    readonly ByteString[] _keys;
    readonly ByteString _value;
    readonly ulong[] _memberIds;

    readonly int _valueBytes;

    public EtcdTarget(IReadOnlyList<Endpoint> endpoints, int channelsPerEndpoint, int keyCount, int valueBytes, TimeSpan connectTimeout)
    {
        Endpoints = endpoints;
        _pool = new ChannelPool(endpoints, channelsPerEndpoint, connectTimeout);
        _keys = new ByteString[keyCount];
        for (int i = 0; i < keyCount; i++) _keys[i] = ByteString.CopyFrom(Encoding.UTF8.GetBytes(Keys.Name(i, valueBytes)));
        _valueBytes = valueBytes;
        _value = ByteString.CopyFrom(Keys.MakeValue(valueBytes));
        _memberIds = new ulong[endpoints.Count];
    }

    public string Kind => "etcd";
    public IReadOnlyList<Endpoint> Endpoints { get; }

    public IWorker CreateWorker(int endpoint, int workerIndex) => new Worker(new E.KV.KVClient(_pool.Get(endpoint, workerIndex)), this);

    public async Task<LeaderView> GetLeaderAsync(int endpoint, TimeSpan timeout, CancellationToken ct)
    {
        var status = await StatusAsync(endpoint, timeout, ct);
        int index = -1;
        if (status.Leader != 0)
        {
            for (int i = 0; i < Endpoints.Count && index < 0; i++)
            {
                if (_memberIds[i] == 0)
                {
                    // Learn the member id of each endpoint once (Status answers with it in the header).
                    try { await StatusAsync(i, timeout, ct); } catch (RpcException) { }
                }
                if (_memberIds[i] == status.Leader) index = i;
            }
        }
        return new LeaderView(index, (long)status.RaftTerm);
    }

    async Task<E.StatusResponse> StatusAsync(int endpoint, TimeSpan timeout, CancellationToken ct)
    {
        var client = new E.Maintenance.MaintenanceClient(_pool.Get(endpoint, 0));
        var status = await client.StatusAsync(new E.StatusRequest(), deadline: DateTime.UtcNow + timeout, cancellationToken: ct);
        if (status.Header is { MemberId: not 0 } header) _memberIds[endpoint] = header.MemberId;
        return status;
    }

    public async Task BetweenRunsAsync(int endpoint, CancellationToken ct)
    {
        // Compact to the current revision so every run starts from the same small history.
        var kv = new E.KV.KVClient(_pool.Get(endpoint, 0));
        var deadline = DateTime.UtcNow.AddSeconds(30);
        var head = await kv.RangeAsync(new E.RangeRequest { Key = _keys[0], CountOnly = true }, deadline: deadline, cancellationToken: ct);
        long revision = head.Header?.Revision ?? 0;
        if (revision <= 1) return;
        try
        {
            await kv.CompactAsync(new E.CompactionRequest { Revision = revision, Physical = true }, deadline: deadline, cancellationToken: ct);
        }
        catch (RpcException e) when (e.Status.Detail.Contains("compacted", StringComparison.OrdinalIgnoreCase))
        {
            // Already compacted at this revision: nothing written since.
        }
    }

    public void Dispose() => _pool.Dispose();

    sealed class Worker(E.KV.KVClient client, EtcdTarget target) : IWorker
    {
        readonly E.PutRequest _put = new() { Value = target._value };
        readonly E.RangeRequest _range = new() { Serializable = ReadMode.Stale };

        public Task PutAsync(int key, DateTime? deadline, CancellationToken ct)
        {
            _put.Key = target._keys[key];
            return client.PutAsync(_put, deadline: deadline, cancellationToken: ct).ResponseAsync;
        }

        public async Task<bool> GetAsync(int key, DateTime? deadline, CancellationToken ct)
        {
            _range.Key = target._keys[key];
            var reply = await client.RangeAsync(_range, deadline: deadline, cancellationToken: ct).ResponseAsync.ConfigureAwait(false);
            return reply.Kvs.Count == 1 && reply.Kvs[0].Value.Length == target._valueBytes;
        }
    }
}

static class Targets
{
    public static ITarget Create(string kind, IReadOnlyList<Endpoint> endpoints, int channelsPerEndpoint, int keyCount, int valueBytes,
        TimeSpan connectTimeout, X509Certificate2? tlsCa = null) =>
        kind switch
        {
            "raftps" => new RaftPsTarget(endpoints, channelsPerEndpoint, keyCount, valueBytes, connectTimeout, tlsCa),
            "etcd" => new EtcdTarget(endpoints, channelsPerEndpoint, keyCount, valueBytes, connectTimeout),
            _ => throw new UsageException($"--target must be raftps or etcd, not '{kind}'"),
        };

    /// <summary>Polls every node until one names a leader that itself agrees; bounded by <paramref name="timeout"/>.</summary>
    public static async Task<LeaderView> WaitForLeaderAsync(ITarget target, TimeSpan timeout, CancellationToken ct)
    {
        var until = DateTime.UtcNow + timeout;
        Exception? last = null;
        while (DateTime.UtcNow < until)
        {
            for (int i = 0; i < target.Endpoints.Count; i++)
            {
                try
                {
                    var view = await target.GetLeaderAsync(i, TimeSpan.FromSeconds(1), ct);
                    if (view.LeaderIndex >= 0)
                    {
                        var confirm = await target.GetLeaderAsync(view.LeaderIndex, TimeSpan.FromSeconds(1), ct);
                        if (confirm.LeaderIndex == view.LeaderIndex) return confirm;
                    }
                }
                catch (RpcException e) { last = e; }
            }
            await Task.Delay(50, ct);
        }
        throw new TimeoutException($"no leader among {string.Join(", ", target.Endpoints)} within {timeout.TotalSeconds:0} s" + (last is null ? "" : $" (last error: {last.Message})"));
    }
}
