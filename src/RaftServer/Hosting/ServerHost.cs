using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using RaftServer.Api;
using RaftServer.Api.Security;
using RaftServer.Cluster;
using RaftServer.Consensus;
using RaftServer.Observability;
using RaftServer.Storage;
using RaftServer.Transport;

namespace RaftServer.Hosting;

/// <summary>
/// The node process: parse the command line and config.conf, open the data directory and recover
/// the log, listen (h2c) on this node's address, run the node loop until Ctrl+C / SIGTERM.
/// Exit codes: 0 stopped normally, 1 a runtime failure (port in use, damaged log, data directory
/// locked), 2 a usage or config error, 3 a disk error while running (a failed write or fsync of
/// the durable state: <see cref="DiskFailureException"/>; a service manager should not restart it
/// blindly). Every failure is one clear line on stderr.
/// </summary>
public static class ServerHost
{
    /// <summary>The exit code after a disk error (docs/security.md, "Disk errors").</summary>
    public const int DiskFailureExitCode = 3;

    public static async Task<int> RunAsync(string[] args)
    {
        NodeSettings? settings;
        try
        {
            settings = NodeSettings.Parse(args);
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            Console.Error.WriteLine(NodeSettings.Usage);
            return 2;
        }
        if (settings is null)
        {
            Console.WriteLine(NodeSettings.Usage);
            return 0;
        }

        ServiceHosting.UseExecutableFolderIfWindowsService();
        TextWriter? logFile = null;
        if (settings.LogFile is { } logPath)
        {
            try
            {
                logFile = ServiceHosting.RedirectOutput(logPath);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"error: --log-file {logPath}: {e.Message}");
                return 2;
            }
        }
        // Disposed last: everything below may still write to it.
        using var logFileScope = logFile;

        // config.conf is read when it exists (a malformed one is an error even when the data
        // directory no longer needs it); a node with no data yet must be in it, or be joining.
        ClusterConfig? config = null;
        try
        {
            if (File.Exists(settings.ConfigPath)) config = ClusterConfig.Load(settings.ConfigPath);
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
        catch (IOException e)
        {
            Console.Error.WriteLine($"error: {settings.ConfigPath}: {e.Message}");
            return 2;
        }
        var dataPath = settings.ResolveDataDir();
        if (!Directory.Exists(dataPath) && settings.Join is null)
        {
            if (config is null)
            {
                Console.Error.WriteLine($"error: {settings.ConfigPath}: file not found (a new cluster's nodes are listed in it; to join an existing cluster, start with --join HOST:PORT)");
                return 2;
            }
            if (config.Find(settings.Id) is null)
            {
                Console.Error.WriteLine($"error: node {settings.Id} is not in {settings.ConfigPath} (ids: {string.Join(", ", config.Nodes.Select(n => n.Id))})");
                return 2;
            }
        }

        using var loggerFactory = CreateLoggerFactory(settings);
        var logger = loggerFactory.CreateLogger(Log.NodeCategory);

        // Client TLS and authentication (docs/security.md): their files are read before anything else.
        ClientSecurity clientSecurity;
        try
        {
            clientSecurity = ClientSecurity.Load(settings);
        }
        catch (InvalidDataException e)
        {
            logger.LogError("{Message}", e.Message);
            return 2;
        }
        using var clientSecurityScope = clientSecurity;
        PeerTls? peerTls = null;
        try
        {
            if (settings.PeerCertFile is { } peerCert) peerTls = PeerTls.Load(peerCert, settings.PeerKeyFile!, settings.PeerCaFile!, settings.Id);
        }
        catch (InvalidDataException e)
        {
            logger.LogError("{Message}", e.Message);
            return 2;
        }
        using var peerTlsScope = peerTls;
        using var authFileReloader = settings.AuthFile is { } authFile ? new AuthFileReloader(authFile, clientSecurity.Access, logger) : null;

        DataDirectory dataDir;
        NodeStorage storage;
        RecoveredNode recovered;
        try
        {
            dataDir = DataDirectory.Open(dataPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger.LogError("{Message}", e.Message);
            return 1;
        }
        try
        {
            storage = NodeStorage.Open(dataDir, logger, out recovered, UnsafeTestSwitches.Disk);
        }
        catch (Exception e) when (e is StorageCorruptException or IOException or UnauthorizedAccessException)
        {
            logger.LogError("{Message}", e.Message);
            dataDir.Dispose();
            return 1;
        }

        StartupMembership members;
        try
        {
            using var interrupted = new CancellationTokenSource();
            ConsoleCancelEventHandler cancel = (_, e) => { e.Cancel = true; interrupted.Cancel(); };
            Console.CancelKeyPress += cancel;
            try
            {
                members = await StartupMembership.ResolveAsync(settings, recovered.State, dataDir.Path, logger, interrupted.Token, peerTls);
            }
            finally
            {
                Console.CancelKeyPress -= cancel;
            }
        }
        catch (Exception e) when (e is ConfigException or MembershipException or InvalidDataException or OperationCanceledException)
        {
            logger.LogError("{Message}", e is OperationCanceledException ? "stopped while joining" : e.Message);
            storage.Dispose();
            dataDir.Dispose();
            return 2;
        }
        if (members.Members.Find(settings.Id)?.Address is not { Host.Length: > 0 } self)
        {
            logger.LogError("node {Id} has no address in {Source} (members: {Members}); it may have been removed from the cluster: to add it again, remove its data directory, add it (Add-RaftNode) and start it with --join",
                settings.Id, members.Source, members.Members.ToString());
            storage.Dispose();
            dataDir.Dispose();
            return 2;
        }

        ulong clusterId;
        try
        {
            clusterId = ClusterIdFile.Read(dataDir.Path);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            logger.LogError("{Message}", e.Message);
            storage.Dispose();
            dataDir.Dispose();
            return 1;
        }

        IPAddress listenAddress;
        try
        {
            listenAddress = ResolveListenAddress(self.Host);
        }
        catch (SocketException e)
        {
            logger.LogError("cannot resolve {Host} (node {Id}): {Message}", self.Host, self.Id, e.Message);
            storage.Dispose();
            dataDir.Dispose();
            return 2;
        }

        // Disposed last (declared first): the lock on the data directory outlives everything that writes to it.
        using var dataDirLock = dataDir;
        using var storageScope = storage;

        var exitCode = 0;
        var transportLogger = loggerFactory.CreateLogger("RaftServer.Transport");
        // A failure to persist an adopted id is a disk failure like the WAL's: the node stops (exit code 3).
        var identity = new ClusterIdentity(clusterId, id =>
        {
            try
            {
                ClusterIdFile.Write(dataDir.Path, id);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException && e is not DiskFailureException)
            {
                throw new DiskFailureException($"writing the cluster id in {dataDir.Path} failed: {e.Message}", e);
            }
        });
        if (identity.Known) logger.LogInformation("Cluster {ClusterId}", identity.ToString());
        else logger.LogInformation("This node knows no cluster id yet: it takes the one its cluster's leader commits");
        var membership = new Membership(settings.Id, members.Members) { SelfAddress = self, Identity = identity };
        var linkTimings = PeerLinkTimings.For(settings.HeartbeatMs, settings.ElectionTimeoutMs);
        var handshake = new PeerHandshake(settings.Id, identity, membership.IsGone, transportLogger, peerTls);
        var clock = Stopwatch.StartNew();
        Func<long> nowMs = () => clock.ElapsedMilliseconds;
        WebApplication? app = null;
        using var sockets = new PeerSockets(membership, transportLogger, linkTimings.InboundIdleTimeout);
        // The instruments exist whether or not --metrics-address exports them (unobserved, each costs a flag check).
        using var metrics = new NodeMetrics();
        var probe = new PeerProbe(metrics, new SlowLinkWarning(settings.HeartbeatMs, transportLogger, nowMs).RoundTrip);
        var probedSockets = new ProbedSockets(sockets, probe);
        // The loop first: everything made after it may post to it at once (events wait in its queue
        // until it starts).
        using var loop = new NodeLoop(probedSockets, settings.HeartbeatMs, nowMs, logger, e =>
        {
            exitCode = e is DiskFailureException ? DiskFailureExitCode : 1;
            app?.Lifetime.StopApplication();
        }, settings.Limits);
        // A peer whose port refuses connections has no process behind it: if it was the leader,
        // the core may start an election at once rather than wait out the election timeout.
        await using var peers = new PeerTransport(membership, transportLogger, id => loop.Post(new PeerUnreachable(id)), linkTimings, handshake);
        metrics.Attach(() => loop.View, loop.Gauges);
        loop.ViewChanged = metrics.ViewChanged;
        await using var snapshots = new SnapshotCoordinator(storage, membership, SnapshotPolicy.From(settings), loop.Post, loggerFactory) { Metrics = metrics, PeerTls = peerTls };
        var driver = new RaftDriver(
            () => new RaftOptions
            {
                Id = settings.Id,
                Bootstrap = members.Bootstrap,
                PersistBootstrapConfiguration = members.PersistBootstrap,
                ElectionTicks = settings.ElectionTicks,
                HeartbeatTicks = 1,
                Random = new Random(),
                SnapshotTimeoutTicks = SnapshotCoordinator.TimeoutTicks(settings.HeartbeatMs),
            },
            membership, new MeteredLogStore(storage, metrics), new ProbedSender(peers, probe), probedSockets, snapshots, storage.Reopen,
            DriverTimeouts.For(settings.HeartbeatMs, settings.ElectionTicks), nowMs, logger);
        var watches = new WatchHub(settings.WatchWindow, settings.WatchWindowBytes, gather: TimeSpan.FromMilliseconds(settings.WatchBatchMs));
        driver.Watches = watches;
        driver.ClusterId = new ClusterIdKeeper(identity, logger);
        driver.Quota = new StorageQuota(settings.QuotaBytes, logger);

        // The empty builder: none of the defaults this process has no use for and that cost memory
        // at rest (appsettings*.json with a file watcher and its thread, environment-variable
        // configuration, host filtering, the default logging providers). Everything it needs is
        // added here: Kestrel (h2c only, so the core server), logging through our factory, gRPC.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseKestrelCore();
        // systemd (Type=notify: READY=1 once Kestrel listens) and the Windows SCM, when one started us.
        ServiceHosting.AddServiceLifetimes(builder.Services);
        builder.Services.AddLogging();
        builder.Services.AddSingleton(loggerFactory);
        builder.Services.AddSingleton(loop);
        builder.Services.AddSingleton<IPeerEndpoint>(loop);
        builder.Services.AddSingleton(membership);
        builder.Services.AddSingleton(peers);
        builder.Services.AddSingleton<ISnapshotSink>(snapshots);
        builder.Services.AddSingleton(new SnapshotUploadGate(settings.MaxSnapshotBytes));
        // The services hold no per-call state. Registered, they are resolved from the container;
        // unregistered, Grpc.AspNetCore builds an activator with System.Linq.Expressions (2.5 MiB
        // of RSS for one compiled lambda) and constructs a new instance for every call.
        builder.Services.AddSingleton(handshake);
        builder.Services.AddSingleton<PeerService>();
        // Kestrel binds with the transport registered last: this one sorts the connections to the
        // node's port, handing peers' message connections to the node loop (which reads them
        // itself) and everything else (HTTP/2: the client service, snapshots) to Kestrel.
        builder.Services.AddSingleton<IConnectionListenerFactory>(
            new PeerSortingListenerFactory(() => loop.Suspended, loop.AcceptConnection, handshake, transportLogger,
                loggerFactory.CreateLogger("Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets"), loop.AcceptTlsConnection,
                linkTimings.RetransmitFloor));
        builder.Services.AddSingleton<ClientService>();
        builder.Services.AddSingleton(new AdminOperations(settings.AllowSuspend));
        builder.Services.AddSingleton(metrics);
        builder.Services.AddSingleton(new CallOutcomeInterceptor(metrics, loggerFactory.CreateLogger(CallOutcomeInterceptor.Category)));
        builder.Services.AddSingleton(clientSecurity.Access);
        builder.Services.AddSingleton<ClientAccessInterceptor>();
        // Peer streams never end by themselves: don't wait 30 s for them on Ctrl+C / SIGTERM.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(1));
        // Message limits per service (docs/security.md): gRPC refuses a larger message
        // RESOURCE_EXHAUSTED from its length prefix, before its body is read.
        builder.Services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = settings.Limits.MaxRequestBytes;
            o.MaxSendMessageSize = null;
            o.EnableDetailedErrors = false;
            o.Interceptors.Add<CallOutcomeInterceptor>();
            o.Interceptors.Add<ClientAccessInterceptor>(); // after the metrics: refused calls are counted
        })
            .AddServiceOptions<ClientService>(o => o.MaxReceiveMessageSize = settings.Limits.MaxRequestBytes)
            .AddServiceOptions<PeerService>(o => o.MaxReceiveMessageSize = SnapshotReceiver.MaxMessageBytes);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxConcurrentConnections = settings.Limits.MaxConnections;
            k.Limits.MaxRequestHeadersTotalSize = settings.Limits.MaxHeaderBytes;
            k.Limits.Http2.MaxRequestHeaderFieldSize = settings.Limits.MaxHeaderBytes;
            k.Limits.Http2.MaxStreamsPerConnection = settings.Limits.MaxStreamsPerConnection;
            k.Limits.Http2.InitialConnectionWindowSize = 8 << 20;
            k.Limits.Http2.InitialStreamWindowSize = 4 << 20;
            k.Limits.MinRequestBodyDataRate = null;
            k.Listen(listenAddress, self.Port, o =>
            {
                o.Protocols = HttpProtocols.Http2;
            });
            // Peers' HTTP/2 over peer TLS: an endpoint of their own, outside the clients' connection limit (bound after the port).
            if (peerTls is not null)
                k.Listen(new PeerTlsSideEndPoint(new IPEndPoint(listenAddress, self.Port)), o =>
                {
                    o.Protocols = HttpProtocols.Http2;
                    o.Use(TlsOutputCoalescing.Middleware); // answers to forwarded calls: one record per batch
                });
            // Client TLS: the connections of the same port that open with a TLS handshake (bound after the port).
            if (clientSecurity.Tls is { } tls)
                k.Listen(new TlsSideEndPoint(new IPEndPoint(listenAddress, self.Port)), o =>
                {
                    o.Protocols = HttpProtocols.Http2;
                    o.UseHttps(tls.HttpsOptions(transportLogger));
                    o.Use(TlsOutputCoalescing.Middleware);
                });
        });
        app = builder.Build();
        app.MapGrpcService<PeerService>();
        app.MapGrpcService<ClientService>();

        try
        {
            await app.StartAsync();
        }
        catch (IOException e)
        {
            var reason = e.InnerException is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse } || e.Message.Contains("in use", StringComparison.OrdinalIgnoreCase)
                ? "the port is already in use"
                : e.Message;
            logger.LogError("cannot listen on {Address} (node {Id}): {Reason}", self.Authority, self.Id, reason);
            return 1;
        }
        catch (SocketException e)
        {
            logger.LogError("cannot listen on {Address} (node {Id}): {Reason}", self.Authority, self.Id, e.Message);
            return 1;
        }

        Log.ServerStarts(logger, self.Authority);
        foreach (var line in clientSecurity.Describe()) logger.LogInformation("{Security}", line);
        logger.LogInformation("{Security}", peerTls?.Describe() ??
            "Peer TLS: off (peers connect in plain text, unauthenticated; --peer-cert-file, --peer-key-file and --peer-ca-file turn it on)");
        await using var metricsServer = settings.MetricsAddress is { } metricsAt ? await StartMetricsAsync(metricsAt, settings.Id, loggerFactory, logger) : null;
        if (settings.MetricsAddress is not null && metricsServer is null)
        {
            await app.StopAsync();
            await app.DisposeAsync();
            return 1;
        }
        if (UnsafeTestSwitches.LocalReads)
            logger.LogWarning("WARNING: {Variable}=1: reads skip the read-index round and may return stale values. " +
                "This switch exists only for tests that must catch a broken server; never set it on a real cluster.", UnsafeTestSwitches.LocalReadsVariable);
        if (UnsafeTestSwitches.FailFsyncAfter is { } fsyncs)
            logger.LogWarning("WARNING: {Variable}={Count}: every fsync after the first {Count} fails. " +
                "This switch exists only for tests of disk failures; never set it on a real cluster.", UnsafeTestSwitches.FailFsyncAfterVariable, fsyncs, fsyncs);
        try
        {
            loop.Start(driver, recovered);
        }
        catch (DiskFailureException e)
        {
            // What starting may persist: the cluster id of the snapshot the node recovered from.
            logger.LogCritical("disk error, the node stops: {Message}", e.Message);
            await app.StopAsync();
            await app.DisposeAsync();
            return DiskFailureExitCode;
        }
        app.Lifetime.ApplicationStopping.Register(loop.Stop);
        // Watch streams never end by themselves: end them with a reason the client resumes from.
        app.Lifetime.ApplicationStopping.Register(() => watches.CancelAll(WatchEnd.NodeStopping, "the node is stopping"));
        await app.WaitForShutdownAsync();
        loop.Stop();
        await app.DisposeAsync();
        return exitCode;
    }

    /// <summary>The metrics listener, or null (said in one error line) when its address cannot be bound.</summary>
    private static async Task<MetricsServer?> StartMetricsAsync(NodeAddress at, int nodeId, ILoggerFactory loggers, ILogger logger)
    {
        try
        {
            var server = await MetricsServer.StartAsync(new IPEndPoint(ResolveListenAddress(at.Host), at.Port), nodeId, loggers);
            logger.LogInformation("Metrics at {Urls}", string.Join(", ", server.Addresses.Select(u => u + MetricsServer.Path)));
            return server;
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            var reason = e.InnerException is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse } || e.Message.Contains("in use", StringComparison.OrdinalIgnoreCase)
                ? "the port is already in use"
                : e.Message;
            logger.LogError("cannot listen for metrics on {Address}: {Reason}", at.Authority, reason);
            return null;
        }
    }

    internal static IPAddress ResolveListenAddress(string host)
    {
        if (IPAddress.TryParse(host, out var ip)) return ip;
        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)) return IPAddress.Loopback;
        return Dns.GetHostAddresses(host).First(a => a.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6);
    }

    internal static ILoggerFactory CreateLoggerFactory(NodeSettings settings) => LoggerFactory.Create(b =>
    {
        b.SetMinimumLevel(settings.LogLevel);
        // ASP.NET Core and gRPC log every request at Information: keep only their warnings.
        b.AddFilter("Microsoft", LogLevel.Warning);
        b.AddFilter("Grpc", LogLevel.Warning);
        // Handler failures are logged by CallOutcomeInterceptor; gRPC's own line also fires for a client's reset.
        b.AddFilter(CallOutcomeInterceptor.GrpcHandlerCategory, LogLevel.None);
        b.AddFilter("System.Net.Http", LogLevel.Warning);
        b.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.None);
        // This category logs only request starts and ends (Information and Debug). While any of its
        // levels is enabled, ASP.NET Core creates an Activity and a log scope for every request
        // (trace ids, tags, an AsyncLocal): a visible share of the leader's CPU in linearizable gets.
        b.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None);
        // A start that fails (the port in use) is reported by RunAsync in one line; the host's own
        // "Hosting failed to start" error would add the exception's stack trace before it.
        b.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.None);
        if (settings.Quiet) b.AddFilter(Log.RequestCategory, LogLevel.None);
        b.AddConsole(o =>
        {
            o.FormatterName = settings.JsonLogs ? ConsoleFormatterNames.Json : PlainConsoleFormatter.Name;
            o.LogToStandardErrorThreshold = LogLevel.Warning;
        });
        // --log-format json: the console provider's own JSON formatter (one object a line: time,
        // level, category, message and the message's fields under "State").
        b.Services.Configure<JsonConsoleFormatterOptions>(o =>
        {
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
            o.JsonWriterOptions = new System.Text.Json.JsonWriterOptions { Indented = false };
        });
        // Not AddConsoleFormatter<PlainConsoleFormatter, ConsoleFormatterOptions>(): it also binds the
        // options from configuration by reflection (IL2026/IL3050, unsafe under Native AOT). Our
        // formatter takes no options, so it is registered as a plain ConsoleFormatter service, which
        // the console provider picks up by its name.
        b.Services.AddSingleton<ConsoleFormatter, PlainConsoleFormatter>();
    });
}
