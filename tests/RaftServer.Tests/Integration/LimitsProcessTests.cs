extern alias bench;

using System.Buffers.Binary;
using System.Net;
using Google.Protobuf;
using Grpc.Core;
using RaftPS.Protocol;

namespace RaftServer.Tests.Integration;

/// <summary>A 3-node cluster with tiny admission caps and Suspend not enabled (the default).</summary>
public sealed class LimitsClusterFixture : IAsyncLifetime
{
    public const int Cap = 4;
    public LocalCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Cluster = await LocalCluster.StartAsync(3, "limits", "--quiet",
            "--max-pending-writes", $"{Cap}", "--max-pending-reads", $"{Cap}");
        await Cluster.WaitForLeaderAsync();
    }

    public async Task DisposeAsync() => await Cluster.DisposeAsync();
}

/// <summary>Request limits, admission control and the Suspend guard, on real processes (docs/security.md).</summary>
[Collection(ProcessCollection.Name)]
public sealed class LimitsProcessTests(LimitsClusterFixture fixture) : IClassFixture<LimitsClusterFixture>
{
    private LocalCluster Cluster => fixture.Cluster;

    [Fact]
    public async Task A_64_MiB_client_message_is_refused_and_the_cluster_keeps_serving()
    {
        var leader = await Cluster.WaitForLeaderAsync();
        var follower = Cluster.Ids.First(i => i != leader);
        foreach (var node in new[] { leader, follower })
        {
            var e = await Assert.ThrowsAsync<RpcException>(() => Cluster.Client(node).SetAsync(
                new SetRequest { Key = "huge", Value = ByteString.CopyFrom(new byte[64 << 20]) }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync);
            Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        }

        var written = await Cluster.SetAsync(follower, "after-huge", "ok");
        Assert.True(written.Index > 0);
        foreach (var id in Cluster.Ids)
        {
            Assert.False(Cluster.Process(id).HasExited);
            Assert.Equal("ok", await Cluster.GetAsync(id, "after-huge"));
            Assert.Null(await Cluster.GetAsync(id, "huge"));
        }
    }

    /// <summary>
    /// Only gRPC's 5-byte length prefix is sent, announcing 64 MiB, and the body never comes: the
    /// node answers RESOURCE_EXHAUSTED all the same, so it refuses from the prefix and never buffers
    /// (or waits for) the message.
    /// </summary>
    [Fact]
    public async Task The_refusal_comes_from_the_length_prefix_before_any_of_the_body()
    {
        var leader = await Cluster.WaitForLeaderAsync();
        using var handler = new SocketsHttpHandler();
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(20) };
        var body = new PrefixOnlyContent(64 << 20);
        using var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{Cluster.Ports[leader]}/raftps.RaftClient/Set")
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = body,
        };
        request.Headers.TryAddWithoutValidation("te", "trailers");
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            await response.Content.ReadAsByteArrayAsync();
            var status = response.Headers.TryGetValues("grpc-status", out var inHeaders) ? inHeaders.Single()
                : response.TrailingHeaders.TryGetValues("grpc-status", out var inTrailers) ? inTrailers.Single() : null;
            Assert.Equal(((int)StatusCode.ResourceExhausted).ToString(), status);
            Assert.False(body.Finished); // the body was still "on its way"
        }
        finally
        {
            body.Finish();
        }
        Assert.Equal("ok", (await Cluster.SetAsync(leader, "after-prefix", "ok")).Index > 0 ? "ok" : "no");
    }

    /// <summary>Through a follower the leader's refusal comes back as it was, with its push-back trailer.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Writes_beyond_the_cap_are_refused_and_every_acknowledged_one_is_kept(bool viaFollower)
    {
        var leader = await Cluster.WaitForLeaderAsync();
        var prefix = viaFollower ? "cap-follower/" : "cap-leader/";
        var client = Cluster.Client(viaFollower ? Cluster.Ids.First(i => i != leader) : leader);
        var outcomes = await Task.WhenAll(Enumerable.Range(0, 300).Select(async i =>
        {
            try
            {
                var reply = await client.SetAsync(new SetRequest { Key = $"{prefix}{i}", Value = ByteString.CopyFromUtf8($"v{i}") },
                    deadline: DateTime.UtcNow.AddSeconds(20));
                return (i, Error: (RpcException?)null, reply.Index);
            }
            catch (RpcException e)
            {
                return (i, Error: e, 0L);
            }
        }));

        var refused = outcomes.Where(o => o.Error is not null).ToList();
        var acknowledged = outcomes.Where(o => o.Error is null).ToList();
        Assert.NotEmpty(refused);
        Assert.NotEmpty(acknowledged);
        foreach (var (_, error, _) in refused)
        {
            Assert.Equal(StatusCode.ResourceExhausted, error!.StatusCode);
            Assert.Equal($"too many pending writes ({LimitsClusterFixture.Cap}); retry later", error.Status.Detail);
            Assert.Equal(["100"], error.Trailers.Where(t => t.Key == "grpc-retry-pushback-ms").Select(t => t.Value));
        }
        // Nothing acknowledged is lost, nothing refused was written.
        foreach (var id in Cluster.Ids)
        {
            var range = await Cluster.Client(id).RangeAsync(new RangeRequest { Prefix = prefix, Limit = 1000 }, deadline: DateTime.UtcNow.AddSeconds(10));
            var stored = range.Items.ToDictionary(kv => kv.Key, kv => kv.Value.ToStringUtf8());
            Assert.Equal(acknowledged.Select(a => $"{prefix}{a.i}").Order(), stored.Keys.Order());
            foreach (var (i, _, _) in acknowledged) Assert.Equal($"v{i}", stored[$"{prefix}{i}"]);
        }
    }

    [Fact]
    public async Task Reads_beyond_the_cap_are_refused_and_the_node_keeps_serving()
    {
        var leader = await Cluster.WaitForLeaderAsync();
        await Cluster.SetAsync(leader, "read-cap", "x");
        var follower = Cluster.Ids.First(i => i != leader);
        var client = Cluster.Client(follower);
        var errors = await Task.WhenAll(Enumerable.Range(0, 300).Select(async _ =>
        {
            try
            {
                var r = await client.GetAsync(new GetRequest { Key = "read-cap" }, deadline: DateTime.UtcNow.AddSeconds(20));
                Assert.Equal("x", r.Value.ToStringUtf8());
                return null;
            }
            catch (RpcException e)
            {
                return e;
            }
        }));
        var refused = errors.OfType<RpcException>().ToList();
        Assert.NotEmpty(refused);
        Assert.All(refused, e => Assert.Equal((StatusCode.ResourceExhausted, $"too many pending reads ({LimitsClusterFixture.Cap}); retry later"), (e.StatusCode, e.Status.Detail)));
        Assert.Equal("x", await Cluster.GetAsync(follower, "read-cap"));
    }

    [Fact]
    public async Task Suspend_is_refused_unless_the_node_was_started_with_allow_suspend()
    {
        var leader = await Cluster.WaitForLeaderAsync();
        var e = await Assert.ThrowsAsync<RpcException>(() => Cluster.Client(leader).SuspendAsync(new SuspendRequest { Seconds = 60 }).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, e.StatusCode);
        Assert.Contains("--allow-suspend", e.Status.Detail);
        var status = await Cluster.StatusAsync(leader);
        Assert.Equal(Role.Leader, status.Role); // not suspended: still leading
        Assert.Equal(leader, await Cluster.WaitForLeaderAsync());
    }

    /// <summary>The node's first HTTP/2 SETTINGS frame says it takes 128 calls at once on a connection
    /// (--max-streams-per-connection's default).</summary>
    [Fact]
    public async Task The_node_announces_128_concurrent_streams_per_connection()
    {
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, Cluster.Ports[Cluster.Ids.First()]);
        var stream = tcp.GetStream();
        // The client preface and an empty SETTINGS frame (RFC 9113, 3.4).
        await stream.WriteAsync("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray());
        await stream.WriteAsync(new byte[] { 0, 0, 0, 4, 0, 0, 0, 0, 0 });
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var header = new byte[9];
        await stream.ReadExactlyAsync(header, timeout.Token);
        Assert.Equal(4, header[3]); // SETTINGS
        var payload = new byte[(header[0] << 16) | (header[1] << 8) | header[2]];
        await stream.ReadExactlyAsync(payload, timeout.Token);
        var settings = Enumerable.Range(0, payload.Length / 6).ToDictionary(
            i => BinaryPrimitives.ReadUInt16BigEndian(payload.AsSpan(6 * i)), i => BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(6 * i + 2)));
        Assert.Equal(128u, settings[3]); // SETTINGS_MAX_CONCURRENT_STREAMS
    }

    /// <summary>
    /// So a .NET client with 200 watches open holds them on more than one connection (it opens
    /// another when a connection's streams are all in use; how many more is its own choice).
    /// </summary>
    [Fact]
    public async Task A_dotnet_client_with_200_calls_in_flight_spreads_them_over_more_than_one_connection()
    {
        var port = Cluster.Ports[Cluster.Ids.First()];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        // The fixture's own clients may hold connections to the node already.
        var before = bench::RaftPS.Bench.ProcInfo.OwnConnectionsTo([port]);
        Assert.NotNull(before);
        // Grpc.Net.Client's own handler, as a user's would be: it opens another connection when the
        // node's MAX_CONCURRENT_STREAMS are all in use.
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress($"http://127.0.0.1:{port}");
        var client = new RaftClient.RaftClientClient(channel);
        var watches = new List<AsyncServerStreamingCall<WatchReply>>();
        AsyncServerStreamingCall<WatchReply> Open(int i)
        {
            var call = client.Watch(new WatchRequest { Key = $"spread/{i}" }, cancellationToken: timeout.Token);
            watches.Add(call);
            return call;
        }
        async Task Created(AsyncServerStreamingCall<WatchReply> watch)
        {
            Assert.True(await watch.ResponseStream.MoveNext(timeout.Token));
            Assert.True(watch.ResponseStream.Current.Created);
        }
        try
        {
            // One call first, so the client has the node's SETTINGS before it opens the rest (until
            // then .NET assumes 100 streams per connection).
            await Created(Open(0));
            foreach (var watch in Enumerable.Range(1, 199).Select(Open).ToList()) await Created(watch);
            var held = bench::RaftPS.Bench.ProcInfo.OwnConnectionsTo([port]);
            Assert.NotNull(held);
            Assert.InRange(held[0] - before[0], 2, 8);
        }
        finally
        {
            foreach (var watch in watches) watch.Dispose();
        }
    }

    /// <summary>A request body that sends a gRPC length prefix and then waits until <see cref="Finish"/>.</summary>
    private sealed class PrefixOnlyContent : HttpContent
    {
        private readonly int _announced;
        private readonly TaskCompletionSource _finish = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public PrefixOnlyContent(int announced)
        {
            _announced = announced;
            Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
        }

        public bool Finished => _finish.Task.IsCompleted;

        public void Finish() => _finish.TrySetResult();

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            var prefix = new byte[5];
            BinaryPrimitives.WriteUInt32BigEndian(prefix.AsSpan(1), (uint)_announced);
            await stream.WriteAsync(prefix);
            await stream.FlushAsync();
            await _finish.Task;
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
