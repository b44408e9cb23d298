using System.Globalization;
using Microsoft.Extensions.Logging;
using RaftServer.Cluster;

namespace RaftServer.Hosting;

/// <summary>A bad command line: the message says what is wrong; the usage follows it.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// The node's command line:
/// <c>RaftServer ID [--config PATH] [--data-dir DIR] [--heartbeat-ms N] [--election-timeout-ms N]
/// [--snapshot-entries N] [--snapshot-log-bytes N] [--watch-window N] [--watch-window-bytes N] [--watch-batch-ms N]
/// [--log-level LEVEL] [--log-format plain|json] [--log-file PATH] [--quiet] [--metrics-address HOST:PORT]
/// [--max-snapshot-bytes N] [--cert-file PATH --key-file PATH [--client-ca-file PATH]] [--auth-file PATH]
/// [--peer-cert-file PATH --peer-key-file PATH --peer-ca-file PATH]
/// [--max-request-bytes N] [--max-pending-writes N] [--max-pending-reads N] [--max-client-connections N]
/// [--max-streams-per-connection N] [--max-header-bytes N] [--allow-suspend] [--quota-bytes N]</c>.
/// </summary>
public sealed record NodeSettings
{
    /// <summary>50 ms heartbeats: a follower hears from its leader 5 times per minimum election timeout.</summary>
    public const int DefaultHeartbeatMs = 50;
    /// <summary>
    /// 250 ms minimum election timeout (each node draws from [250, 500) ms): fail-over in about 0.3 s
    /// median, while a leader stalled by a GC pause or a saturated CPU for up to ~200 ms keeps its
    /// followers. See docs/server.md, "Timeouts".
    /// </summary>
    public const int DefaultElectionTimeoutMs = 250;
    /// <summary>
    /// A snapshot is taken once the log since the last one holds this many entries and at least as
    /// many bytes as that snapshot (so a large state is not rewritten every few thousand writes):
    /// small states keep a short log (disk and restart time stay small), large ones amortise.
    /// </summary>
    public const long DefaultSnapshotEntries = 5_000;
    /// <summary>A snapshot is taken regardless of the entry count once the log since the last one passes this.</summary>
    public const long DefaultSnapshotLogBytes = 64L << 20;
    /// <summary>See docs/server.md, "Watches": DEFAULT_REASON.</summary>
    public const int DefaultWatchBatchMs = 0;
    /// <summary>The largest snapshot this node takes from a leader: 8 GiB (docs/security.md, "Snapshot uploads").</summary>
    public const long DefaultMaxSnapshotBytes = 8L << 30;

    public const string Usage = """
        usage: RaftServer ID [options]
          ID                        this node's id
          --config PATH             a new cluster's members, lines of 'ID HOST PORT' (default: ./config.conf);
                                    read only while the data directory holds no configuration
          --join HOST:PORT          join an existing cluster through any of its members (add this node
                                    first: Add-RaftNode, or the AddMember call); the data directory must be new
          --data-dir DIR            where the node keeps its log (default: ./data/node-ID)
          --heartbeat-ms N          leader heartbeat period and the node's tick (default: 50)
          --election-timeout-ms N   minimum election timeout; each node draws from [N, 2N) (default: 250)
          --snapshot-entries N      snapshot once the log since the last snapshot has N entries and at least
                                    as many bytes as that snapshot (default: 5000)
          --snapshot-log-bytes N    snapshot once the log since the last snapshot has N bytes of entries,
                                    whatever their number (default: 67108864 = 64 MiB)
          --quota-bytes N           storage quota: writes are refused (NOSPACE) while keys and values would
                                    take more than N bytes; reads and deletes still work (default: 2147483648 = 2 GiB)
          --watch-window N          changes kept for watchers to resume from (default: 65536)
          --watch-window-bytes N    bytes of keys and values they may hold (default: 67108864 = 64 MiB)
          --watch-batch-ms N        wake watchers at most every N ms while changes stream in (default: DEFAULT_BATCH)
          --log-level LEVEL         trace, debug, information, warning, error, critical or none (default: information)
          --log-format FORMAT       plain (the default: the message alone) or json (one JSON object a line,
                                    with time, level, category, message and its fields; for log shippers)
          --log-file PATH           append the output to PATH instead of writing it to stdout/stderr (a Windows
                                    service has neither)
          --quiet                   no per-request lines ("Command from client: ..."); node events still print
          --metrics-address HOST:PORT  serve Prometheus metrics at http://HOST:PORT/metrics (a port of its own;
                                    off by default)
          --max-snapshot-bytes N    refuse a leader's snapshot larger than N bytes before storing any of it
                                    (default: 8589934592 = 8 GiB; at least the largest snapshot the cluster makes)
          --cert-file PATH          serve clients over TLS with this PEM certificate (intermediates may follow it);
                                    needs --key-file (off by default; peers: --peer-cert-file)
          --key-file PATH           the PEM private key of --cert-file
          --client-ca-file PATH     require client certificates issued by this PEM CA (with --cert-file)
          --peer-cert-file PATH     peer TLS: this node's PEM certificate for its peers, naming raftps://node/ID
                                    (New-RaftCertificate Node -NodeId); needs --peer-key-file and --peer-ca-file
          --peer-key-file PATH      the PEM private key of --peer-cert-file
          --peer-ca-file PATH       peer TLS: the PEM CA that issued every node's peer certificate
          --auth-file PATH          require a token from clients: lines of 'NAME ROLE SHA256-OF-TOKEN', role read,
                                    write or admin (New-RaftUserToken writes them), or 'NAME ROLE certificate' (a
                                    client certificate with CN=NAME); reread when it changes or on SIGHUP;
                                    without it auth is off
          --max-request-bytes N     largest client request accepted, refused RESOURCE_EXHAUSTED beyond (default: 4259840
                                    = 4 MiB + 64 KiB, room for the largest SetMany)
          --max-pending-writes N    client writes this node holds at once (queued or proposed, not yet answered);
                                    more are refused RESOURCE_EXHAUSTED (default: 10000)
          --max-pending-reads N     linearizable reads this node holds at once; likewise (default: 10000)
          --max-client-connections N  clients' HTTP/2 connections at once (peers over peer TLS not counted) (default: 4096)
          --max-streams-per-connection N  concurrent calls per HTTP/2 connection (default: 128)
          --max-header-bytes N      request headers of a call, in all (default: 32768)
          --allow-suspend           accept the Suspend call (off: refused PERMISSION_DENIED); Start-RaftCluster sets it
          --help                    show this help
        """;

    public required int Id { get; init; }
    public string ConfigPath { get; init; } = "config.conf";
    public string? DataDir { get; init; }
    /// <summary>A member of an existing cluster to learn the members from (a node that joins).</summary>
    public NodeAddress? Join { get; init; }
    public int HeartbeatMs { get; init; } = DefaultHeartbeatMs;
    public int ElectionTimeoutMs { get; init; } = DefaultElectionTimeoutMs;
    public long SnapshotEntries { get; init; } = DefaultSnapshotEntries;
    public long SnapshotLogBytes { get; init; } = DefaultSnapshotLogBytes;
    public int WatchWindow { get; init; } = WatchHub.DefaultCapacity;
    public long WatchWindowBytes { get; init; } = WatchHub.DefaultMaxBytes;
    public int WatchBatchMs { get; init; } = DefaultWatchBatchMs;
    public LogLevel LogLevel { get; init; } = LogLevel.Information;
    public bool Quiet { get; init; }
    /// <summary>Where the output goes instead of stdout and stderr; null for the console.</summary>
    public string? LogFile { get; init; }
    /// <summary>One JSON object a line instead of the plain message (--log-format json).</summary>
    public bool JsonLogs { get; init; }
    /// <summary>Where the metrics listener listens; null: no metrics listener.</summary>
    public NodeAddress? MetricsAddress { get; init; }
    /// <summary>The largest snapshot upload this node accepts (<see cref="Transport.SnapshotUploadGate"/>).</summary>
    public long MaxSnapshotBytes { get; init; } = DefaultMaxSnapshotBytes;
    /// <summary>Client TLS: the node's PEM certificate (with <see cref="KeyFile"/>); null: clients connect in plain text.</summary>
    public string? CertFile { get; init; }
    public string? KeyFile { get; init; }
    /// <summary>The PEM CA that client certificates must chain to; null: no client certificate asked for.</summary>
    public string? ClientCaFile { get; init; }
    /// <summary>Peer TLS: this node's PEM certificate for its peers (with <see cref="PeerKeyFile"/> and <see cref="PeerCaFile"/>); null: peers talk in plain text.</summary>
    public string? PeerCertFile { get; init; }
    public string? PeerKeyFile { get; init; }
    public string? PeerCaFile { get; init; }
    /// <summary>The users and their token hashes; null: authentication off.</summary>
    public string? AuthFile { get; init; }
    /// <summary>The client request limits and admission control (docs/security.md).</summary>
    public ClientLimits Limits { get; init; } = ClientLimits.Default;
    /// <summary>Whether the Suspend call is accepted (--allow-suspend); refused PERMISSION_DENIED otherwise.</summary>
    public bool AllowSuspend { get; init; }
    /// <summary>The storage quota in bytes of live keys and values (<see cref="StorageQuota"/>).</summary>
    public long QuotaBytes { get; init; } = StorageQuota.DefaultBytes;

    /// <summary>The election timeout in ticks of <see cref="HeartbeatMs"/> (at least 2).</summary>
    public int ElectionTicks => Math.Max(2, (int)Math.Round((double)ElectionTimeoutMs / HeartbeatMs));

    public string ResolveDataDir() => DataDir ?? Path.Combine(Directory.GetCurrentDirectory(), "data", $"node-{Id}");

    /// <summary>Null when --help was asked for.</summary>
    /// <exception cref="UsageException"></exception>
    public static NodeSettings? Parse(IReadOnlyList<string> args)
    {
        int? id = null;
        string config = "config.conf";
        string? dataDir = null;
        NodeAddress? join = null;
        int heartbeat = DefaultHeartbeatMs, election = DefaultElectionTimeoutMs;
        var level = LogLevel.Information;
        var quiet = false;
        string? logFile = null;
        NodeAddress? metricsAddress = null;
        var jsonLogs = false;
        long snapshotEntries = DefaultSnapshotEntries, snapshotLogBytes = DefaultSnapshotLogBytes;
        long watchWindow = WatchHub.DefaultCapacity, watchWindowBytes = WatchHub.DefaultMaxBytes;
        int watchBatch = DefaultWatchBatchMs;
        long maxSnapshotBytes = DefaultMaxSnapshotBytes;
        string? certFile = null, keyFile = null, clientCaFile = null, authFile = null, peerCertFile = null, peerKeyFile = null, peerCaFile = null;
        var limits = ClientLimits.Default;
        var allowSuspend = false;
        var quotaBytes = StorageQuota.DefaultBytes;

        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            string Value()
            {
                if (i + 1 >= args.Count || args[i + 1].Length == 0)
                    throw new UsageException($"{arg} needs a value");
                return args[++i];
            }
            int Milliseconds(int min, int max)
            {
                var text = Value();
                if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < min || n > max)
                    throw new UsageException($"{arg}: '{text}' is not a number of milliseconds from {min} to {max}");
                return n;
            }
            long Bounded(long n, long max) => n <= max ? n : throw new UsageException($"{arg}: {n} is more than {max}");
            long Count(long min)
            {
                var text = Value();
                if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < min)
                    throw new UsageException($"{arg}: '{text}' is not a whole number of at least {min}");
                return n;
            }

            switch (arg)
            {
                case "-h" or "--help" or "-?": return null;
                case "--config": config = Value(); break;
                case "--data-dir": dataDir = Value(); break;
                case "--join": join = HostPort(arg, Value(), minPort: 1); break;
                case "--metrics-address": metricsAddress = HostPort(arg, Value(), minPort: 0); break;
                case "--heartbeat-ms": heartbeat = Milliseconds(1, 60_000); break;
                case "--election-timeout-ms": election = Milliseconds(2, 600_000); break;
                case "--snapshot-entries": snapshotEntries = Count(1); break;
                case "--snapshot-log-bytes": snapshotLogBytes = Count(4096); break;
                case "--watch-window":
                    watchWindow = Count(16);
                    if (watchWindow > 1 << 24) throw new UsageException($"--watch-window: {watchWindow} is more than {1 << 24} changes");
                    break;
                case "--watch-window-bytes": watchWindowBytes = Count(1 << 16); break;
                case "--watch-batch-ms": watchBatch = Milliseconds(0, 1000); break;
                case "--quota-bytes": quotaBytes = Count(1 << 20); break;
                case "--log-level":
                    var text = Value();
                    if (!Enum.TryParse(text, ignoreCase: true, out level) || !Enum.IsDefined(level) || int.TryParse(text, out _))
                        throw new UsageException($"--log-level: '{text}' is not one of trace, debug, information, warning, error, critical, none");
                    break;
                case "--quiet" or "-q": quiet = true; break;
                case "--log-format":
                    jsonLogs = Value().ToLowerInvariant() switch
                    {
                        "plain" => false,
                        "json" => true,
                        _ => throw new UsageException($"--log-format: '{args[i]}' is not plain or json"),
                    };
                    break;
                case "--log-file": logFile = Value(); break;
                case "--max-snapshot-bytes": maxSnapshotBytes = Count(1 << 20); break;
                case "--cert-file": certFile = Value(); break;
                case "--key-file": keyFile = Value(); break;
                case "--client-ca-file": clientCaFile = Value(); break;
                case "--peer-cert-file": peerCertFile = Value(); break;
                case "--peer-key-file": peerKeyFile = Value(); break;
                case "--peer-ca-file": peerCaFile = Value(); break;
                case "--auth-file": authFile = Value(); break;
                case "--max-request-bytes": limits = limits with { MaxRequestBytes = (int)Bounded(Count(4096), int.MaxValue) }; break;
                case "--max-pending-writes": limits = limits with { MaxPendingWrites = (int)Bounded(Count(1), 1 << 24) }; break;
                case "--max-pending-reads": limits = limits with { MaxPendingReads = (int)Bounded(Count(1), 1 << 24) }; break;
                case "--max-client-connections": limits = limits with { MaxConnections = Bounded(Count(1), 1 << 24) }; break;
                case "--max-streams-per-connection": limits = limits with { MaxStreamsPerConnection = (int)Bounded(Count(1), 1 << 16) }; break;
                case "--max-header-bytes": limits = limits with { MaxHeaderBytes = (int)Bounded(Count(1024), 1 << 20) }; break;
                case "--allow-suspend": allowSuspend = true; break;
                default:
                    if (arg.StartsWith('-') && !int.TryParse(arg, out _))
                        throw new UsageException($"unknown option '{arg}'");
                    if (id is not null)
                        throw new UsageException($"unexpected argument '{arg}' (the node id is already {id})");
                    if (!int.TryParse(arg, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed))
                        throw new UsageException($"node id '{arg}' is not a non-negative integer");
                    id = parsed;
                    break;
            }
        }

        if (id is null) throw new UsageException("the node id is missing");
        if (election < 2 * heartbeat)
            throw new UsageException($"--election-timeout-ms ({election}) must be at least twice --heartbeat-ms ({heartbeat})");
        if ((certFile is null) != (keyFile is null))
            throw new UsageException("--cert-file and --key-file go together (client TLS needs both)");
        if ((peerCertFile is null) != (peerKeyFile is null) || (peerCertFile is null) != (peerCaFile is null))
            throw new UsageException("--peer-cert-file, --peer-key-file and --peer-ca-file go together (peer TLS needs all three)");
        if (clientCaFile is not null && certFile is null)
            throw new UsageException("--client-ca-file needs --cert-file and --key-file (client certificates are asked for over TLS)");
        return new NodeSettings
        {
            CertFile = certFile, KeyFile = keyFile, ClientCaFile = clientCaFile, AuthFile = authFile,
            PeerCertFile = peerCertFile, PeerKeyFile = peerKeyFile, PeerCaFile = peerCaFile,
            Id = id.Value, ConfigPath = config, DataDir = dataDir, Join = join, HeartbeatMs = heartbeat, ElectionTimeoutMs = election,
            SnapshotEntries = snapshotEntries, SnapshotLogBytes = snapshotLogBytes, LogLevel = level, Quiet = quiet,
            LogFile = logFile, MetricsAddress = metricsAddress, JsonLogs = jsonLogs,
            WatchWindow = (int)watchWindow, WatchWindowBytes = watchWindowBytes, WatchBatchMs = watchBatch,
            MaxSnapshotBytes = maxSnapshotBytes,
            Limits = limits, AllowSuspend = allowSuspend,
            QuotaBytes = quotaBytes,
        };
    }

    private static NodeAddress HostPort(string option, string endpoint, int minPort)
    {
        var colon = endpoint.LastIndexOf(':');
        var host = colon > 0 ? NodeAddress.BareHost(endpoint[..colon]) : "";
        // An IPv6 address needs its brackets here: in "::1:5000" the port cannot be told apart.
        if (colon <= 0 || !int.TryParse(endpoint.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            || port < minPort || port > 65535 || Uri.CheckHostName(host) is not (UriHostNameType.Dns or UriHostNameType.IPv4 or UriHostNameType.IPv6)
            || (host.Contains(':') && !endpoint.StartsWith('[')))
            throw new UsageException($"{option}: '{endpoint}' is not HOST:PORT (an IPv6 address in brackets: [::1]:50000)");
        return new NodeAddress(-1, host, port);
    }
}
