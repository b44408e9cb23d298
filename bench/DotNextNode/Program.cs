// DotNextNode ID --config FILE --data-dir DIR [--log-level LEVEL] [--election-ms LOWER-UPPER] [--request-timeout-ms N]
//             [--snapshot-entries N] [--wal-chunk-bytes N]
//
// One member of a 3-node DotNext Raft cluster serving RaftPS's client gRPC service: a third target
// for RaftPS.Bench (its "raftps" target drives it). The config file is RaftPS's: "ID HOST PORT" per
// line, PORT the client gRPC port. The member's Raft port (DotNext's TCP transport) is an optional
// fourth column, else PORT + 1000. Loopback addresses only.
using System.Net;
using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.Membership;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using DotNextNode;
using Microsoft.AspNetCore.Server.Kestrel.Core;

if (args.Length < 1 || !int.TryParse(args[0], out var selfId))
    return Usage("the first argument is the node id");
string? configPath = null, dataDir = null;
var logLevel = LogLevel.Warning;
int? lowerElection = null, upperElection = null, requestTimeout = null;
var snapshotEvery = KvStateMachine.DefaultSnapshotEvery;
int? chunkSize = null;
for (var i = 1; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--config" when i + 1 < args.Length: configPath = args[++i]; break;
        case "--data-dir" when i + 1 < args.Length: dataDir = args[++i]; break;
        case "--log-level" when i + 1 < args.Length && Enum.TryParse<LogLevel>(args[i + 1], true, out var l): logLevel = l; i++; break;
        case "--election-ms" when i + 1 < args.Length && args[i + 1].Split('-') is [var lo, var hi]
                                  && int.TryParse(lo, out var l1) && int.TryParse(hi, out var h1) && l1 > 0 && h1 > l1:
            lowerElection = l1; upperElection = h1; i++; break;
        case "--request-timeout-ms" when i + 1 < args.Length && int.TryParse(args[i + 1], out var rt) && rt > 0:
            requestTimeout = rt; i++; break;
        case "--snapshot-entries" when i + 1 < args.Length && long.TryParse(args[i + 1], out var se) && se > 0:
            snapshotEvery = se; i++; break;
        case "--wal-chunk-bytes" when i + 1 < args.Length && int.TryParse(args[i + 1], out var cs) && cs > 0:
            chunkSize = cs; i++; break;
        default: return Usage($"unknown or incomplete option '{args[i]}'");
    }
}
if (configPath is null || dataDir is null) return Usage("--config and --data-dir are required");

ClusterConfig config;
try { config = ClusterConfig.Load(configPath); }
catch (FormatException e) { Console.Error.WriteLine($"DotNextNode: {configPath}: {e.Message}"); return 2; }
if (config.Find(selfId) is not { } self) { Console.Error.WriteLine($"DotNextNode: node {selfId} is not in {configPath}"); return 2; }

// ASP.NET Core's per-request information logs are noise here: warnings and up from it. The hosting
// diagnostics category is off at every level, as in RaftServer: while it is enabled at any level,
// ASP.NET Core creates an Activity for every request (docs/server.md, "Runtime settings").
void ConfigureLogging(ILoggingBuilder b) =>
    b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(logLevel).AddFilter("Microsoft.AspNetCore", LogLevel.Warning).AddFilter("Grpc", LogLevel.Warning)
        .AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None);
using var loggers = LoggerFactory.Create(ConfigureLogging);
var log = loggers.CreateLogger("DotNextNode");

// The Raft member: DotNext's own TCP transport on the Raft port, the three members fixed up front
// (in-memory configuration storage, no cold start: no node bootstraps itself alone). Election
// timeouts (150-300 ms), request timeout and heartbeat threshold (0.5) are DotNext's defaults
// unless --election-ms / --request-timeout-ms say otherwise.
// The timers are init-only: DotNext's defaults are read from a configuration built without them.
var raftEndPoint = new IPEndPoint(IPAddress.Loopback, self.RaftPort);
var defaults = new RaftCluster.TcpConfiguration(raftEndPoint) { ConfigurationStorage = null };
var raftConfig = new RaftCluster.TcpConfiguration(raftEndPoint)
{
    ConfigurationStorage = null, // required member; null = DotNext's in-memory storage, filled below
    ColdStart = false,
    LoggerFactory = loggers,
    UpperElectionTimeout = upperElection ?? defaults.UpperElectionTimeout, // upper first: lower must stay below it
    LowerElectionTimeout = lowerElection ?? defaults.LowerElectionTimeout,
    RequestTimeout = requestTimeout is { } rtMs ? TimeSpan.FromMilliseconds(rtMs) : defaults.RequestTimeout,
};
var members = ((InMemoryClusterConfigurationStorage<EndPoint>)raftConfig.ConfigurationStorage!).CreateInitialConfigurationBuilder();
foreach (var node in config.Nodes)
    members.Add(new IPEndPoint(IPAddress.Loopback, node.RaftPort));
members.Build();

// The log: DotNext's WriteAheadLog under DIR/wal, the state machine's snapshots under DIR/snapshots.
Directory.CreateDirectory(dataDir);
var stateMachine = new KvStateMachine(new DirectoryInfo(Path.Combine(dataDir, "snapshots")), snapshotEvery);
await stateMachine.RestoreAsync();
// ChunkSize (the largest WAL data file) defaults to the OS page size, 4 KiB here: --wal-chunk-bytes
// overrides it (bench/run.sh does for its value-size runs: one memory-mapped file per chunk would
// exhaust the open files); it is not a durability setting.
var walDefaults = new WriteAheadLog.Options { Location = Path.Combine(dataDir, "wal") };
var walOptions = new WriteAheadLog.Options
{
    Location = Path.Combine(dataDir, "wal"),
    ChunkSize = chunkSize ?? walDefaults.ChunkSize,
    // Durability: DotNext's defaults. In 6.12 FlushOnCommit and FlushInterval are obsolete ("always
    // true"; "WAL uses automatic checkpoint on every commit"): every commit is flushed to disk
    // before it completes, on every member. MemoryManagement, NoBuffering, hash: defaults (Describe).
};
var wal = new WriteAheadLog(walOptions, stateMachine);

using var cluster = new RaftCluster(raftConfig) { AuditTrail = wal };
cluster.LeaderChanged += (_, leader) => log.LogInformation("leader: {Leader} (term {Term})", leader?.EndPoint, cluster.Term);
log.LogWarning("node {Id}: client 127.0.0.1:{Port}, raft 127.0.0.1:{RaftPort}; WAL {Wal}", self.Id, self.Port, self.RaftPort, Describe(walOptions, raftConfig));
await cluster.StartAsync(CancellationToken.None);

// The client service: Kestrel, h2c only (as RaftServer), on the client port.
var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
builder.WebHost.UseKestrelCore();
builder.Services.AddLogging(ConfigureLogging);
builder.Services.AddSingleton<IRaftCluster>(cluster);
builder.Services.AddSingleton(stateMachine);
builder.Services.AddSingleton(config);
builder.Services.AddSingleton<ClientApi>();
builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(1));
builder.Services.AddGrpc(o => { o.MaxReceiveMessageSize = 4 << 20; o.EnableDetailedErrors = false; });
builder.WebHost.ConfigureKestrel(k =>
{
    k.AddServerHeader = false;
    k.Limits.Http2.MaxStreamsPerConnection = 1000;
    k.Limits.MinRequestBodyDataRate = null;
    k.Listen(IPAddress.Loopback, self.Port, o => o.Protocols = HttpProtocols.Http2);
});
var app = builder.Build();
app.MapGrpcService<ClientApi>();
await app.StartAsync();

// Until SIGTERM / Ctrl+C: the host's lifetime reports it.
var stop = new TaskCompletionSource();
app.Lifetime.ApplicationStopping.Register(() => stop.TrySetResult());
await stop.Task;
await app.StopAsync();
await cluster.StopAsync(CancellationToken.None);
await wal.DisposeAsync();
await stateMachine.DisposeAsync();
return 0;

static int Usage(string why)
{
    Console.Error.WriteLine($"DotNextNode: {why}\nusage: DotNextNode ID --config FILE --data-dir DIR [--log-level warning] [--election-ms 150-300] [--request-timeout-ms N] [--snapshot-entries 50000] [--wal-chunk-bytes N]");
    return 2;
}

static string Describe(WriteAheadLog.Options o, RaftCluster.NodeConfiguration c) =>
    $"MemoryManagement={o.MemoryManagement} NoBuffering={o.NoBuffering} " +
    $"ChunkSize={o.ChunkSize} HashAlgorithm={o.HashAlgorithm}; election {c.LowerElectionTimeout}-{c.UpperElectionTimeout} ms, request timeout {c.RequestTimeout.TotalMilliseconds} ms, " +
    $"heartbeat threshold {c.HeartbeatThreshold}, leader lease {c.IsLeaderLeaseEnabled}, aggressive stickiness {c.AggressiveLeaderStickiness}";

namespace DotNextNode
{
    /// <summary>RaftPS's config file: "ID HOST PORT [RAFTPORT]" per line; '#' starts a comment.</summary>
    sealed class ClusterConfig
    {
        public sealed record Node(int Id, string Host, int Port, int RaftPort);

        public required IReadOnlyList<Node> Nodes { get; init; }

        public Node? Find(int id) => Nodes.FirstOrDefault(n => n.Id == id);
        public Node? ByRaftPort(int port) => Nodes.FirstOrDefault(n => n.RaftPort == port);

        public static ClusterConfig Load(string path)
        {
            var nodes = new List<Node>();
            foreach (var raw in File.ReadAllLines(path))
            {
                var line = raw.Split('#')[0].Trim();
                if (line.Length == 0) continue;
                var f = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
                if (f.Length is < 3 or > 4 || !int.TryParse(f[0], out var id) || !int.TryParse(f[2], out var port))
                    throw new FormatException($"'{raw}' is not 'ID HOST PORT [RAFTPORT]'");
                // The DotNext members listen on 127.0.0.1 only: a benchmark target, not a deployment.
                if (!(f[1] == "localhost" || (IPAddress.TryParse(f[1], out var a) && IPAddress.IsLoopback(a))))
                    throw new FormatException($"'{f[1]}' is not a loopback address (DotNextNode serves loopback only)");
                var raftPort = f.Length == 4 ? int.Parse(f[3]) : port + 1000;
                if (port is < 1 or > 65535 || raftPort is < 1 or > 65535) throw new FormatException($"'{raw}': a port is out of range");
                nodes.Add(new Node(id, f[1], port, raftPort));
            }
            if (nodes.Count == 0) throw new FormatException("no nodes");
            return new ClusterConfig { Nodes = nodes };
        }
    }
}
