using System.Diagnostics;
using System.Management.Automation;
using Grpc.Core;
using RaftPS.Client;
using RaftPS.Cluster;
using RaftPS.Protocol;
using RaftMember = RaftPS.RaftMember;

namespace RaftPS.Cmdlets;

/// <summary>
/// Start-RaftCluster: one server process per node of the config (or the -NodeId ones), from the
/// server binaries shipped in the module folder. With all nodes it returns once a leader is
/// elected; with -NodeId, once the started nodes answer. -Count N starts a local cluster of N
/// nodes kept in the user's folder (<see cref="LocalClusterFolder"/>); -Join starts nodes that join
/// a running cluster. A session with no current connection is connected to the first started node.
/// </summary>
[Cmdlet(VerbsLifecycle.Start, "RaftCluster", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low, DefaultParameterSetName = ConfigSet)]
[OutputType(typeof(RaftNodeProcess))]
public sealed class StartRaftClusterCommand : RaftCmdlet
{
    /// <summary>Extra server arguments (e.g. "--election-timeout-ms 300"), for tests and tuning.</summary>
    public const string ServerArgumentsVariable = "RAFTPS_SERVER_ARGS";

    private const string ConfigSet = "Config";
    private const string LocalSet = "Local";
    private const string JoinSet = "Join";
    private const string DefaultConfigFile = "config.conf";

    [Parameter(Position = 0, ParameterSetName = ConfigSet)]
    [Parameter(ParameterSetName = JoinSet)]
    [ValidateNotNullOrEmpty]
    public string ConfigPath { get; set; } = DefaultConfigFile;

    [Parameter(ParameterSetName = ConfigSet)]
    [Parameter(ParameterSetName = JoinSet, Mandatory = true)]
    [ArgumentCompleter(typeof(NodeIdCompleter))]
    public int[]? NodeId { get; set; }

    /// <summary>
    /// A member of a running cluster (HOST:PORT): the -NodeId nodes join it (each must have been
    /// added, e.g. by Add-RaftNode -AsLearner); their addresses come from the cluster, not the config.
    /// Also restarts such a node (its data directory then holds the cluster's configuration).
    /// </summary>
    [Parameter(ParameterSetName = JoinSet, Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string? Join { get; set; }

    [Parameter(ParameterSetName = ConfigSet)]
    [Parameter(ParameterSetName = JoinSet)]
    [ValidateNotNullOrEmpty]
    public string DataDirectory { get; set; } = "data";

    [Parameter(Mandatory = true, ParameterSetName = LocalSet)]
    [ValidateRange(1, 9)]
    public int Count { get; set; }

    [Parameter(ParameterSetName = LocalSet)]
    [ValidatePattern("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    [ArgumentCompleter(typeof(LocalClusterNameCompleter))]
    public string Name { get; set; } = "local";

    [Parameter]
    [ValidateRange(1, 3600)]
    public int TimeoutSec { get; set; } = 30;

    /// <summary>
    /// Client TLS with client certificates and tokens: a throwaway CA, certificates and an admin
    /// token in &lt;data directory&gt;/tls (<see cref="SecureClusterFiles"/>); the session connects with them.
    /// </summary>
    [Parameter]
    public SwitchParameter Secure { get; set; }

    /// <summary>-Secure: the files, and how this cmdlet's calls reach the nodes.</summary>
    private SecureClusterFiles? _secure;
    private ConnectionSecurity? _security;

    protected override string ProgressActivity => "Start-RaftCluster";

    protected override void EndProcessing()
    {
        if (ParameterSetName == JoinSet)
        {
            StartJoining(Join!);
            return;
        }
        string configPath, dataDirectory;
        if (ParameterSetName == LocalSet)
        {
            if (PrepareLocalCluster() is not { } folder) return;
            configPath = LocalClusterFolder.ConfigPath(folder);
            dataDirectory = folder;
        }
        else
        {
            configPath = SessionState.Path.GetUnresolvedProviderPathFromPSPath(ConfigPath);
            if (!File.Exists(configPath)) ThrowTerminatingError(ConfigNotFound(configPath));
            dataDirectory = SessionState.Path.GetUnresolvedProviderPathFromPSPath(DataDirectory);
        }
        var configNodes = ClusterConfigFile.Read(configPath);
        if (configNodes.Count == 0)
            ThrowTerminatingError(new ErrorRecord(new FormatException($"The config file '{configPath}' lists no node as 'ID HOST PORT'."),
                "RaftConfigInvalid", ErrorCategory.InvalidArgument, configPath));
        EnsureServer();
        if (Secure) PrepareSecure(dataDirectory, configNodes.Select(n => n.Host));

        var selected = new List<ConfigNode>();
        if (NodeId is null)
        {
            selected.AddRange(configNodes);
        }
        else
        {
            foreach (var id in NodeId.Distinct())
            {
                if (configNodes.FirstOrDefault(n => n.Id == id) is { } node) selected.Add(node);
                else WriteError(new ErrorRecord(new ItemNotFoundException($"Node {id} is not in '{configPath}' (ids: {string.Join(", ", configNodes.Select(n => n.Id))})."),
                    "RaftNodeNotInConfig", ErrorCategory.ObjectNotFound, id));
            }
        }

        ClusterDirectory.Record(configNodes.Select(n => new RaftEndpoint(n.Host, n.Port)).ToList());
        var extra = Environment.GetEnvironmentVariable(ServerArgumentsVariable);
        var launched = new List<LaunchedNode>();
        foreach (var node in selected)
        {
            if (NodeRegistry.Find(configPath, node.Id) is { HasExited: false } already)
            {
                WriteError(new ErrorRecord(new InvalidOperationException($"Node {node.Id} of '{configPath}' is already running (process {already.Info.ProcessId}). Stop it with Stop-RaftCluster first."),
                    "RaftNodeAlreadyRunning", ErrorCategory.ResourceExists, already.Info));
                continue;
            }
            if (!ShouldProcess($"node {node.Id} ({new RaftEndpoint(node.Host, node.Port)})", "Start"))
                continue;
            LaunchedNode started;
            try
            {
                started = NodeLauncher.Start(node, configPath, dataDirectory, extra, securityArguments: _secure?.ServerArguments(node.Id));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.ComponentModel.Win32Exception or InvalidOperationException)
            {
                WriteError(new ErrorRecord(e, "RaftNodeStartFailed", ErrorCategory.InvalidOperation, node.Id));
                continue;
            }
            NodeRegistry.Add(started);
            WriteVerbose($"Started node {node.Id} ({new RaftEndpoint(node.Host, node.Port)}) as process {started.Info.ProcessId}; log: {started.Info.LogPath}");
            launched.Add(started);
        }
        if (launched.Count == 0) return;

        Output(WaitUntilReady(launched, waitForLeader: NodeId is null));
    }

    /// <summary>Writes the started nodes; a session with no current connection is connected to the first.</summary>
    private void Output(List<LaunchedNode> running)
    {
        // -Secure connects the session even when it has a connection: only its TLS settings and token reach the nodes.
        if (running.Count > 0 && (CurrentConnection.Get() is null || _security is not null))
        {
            // What the user types next (Set-RaftValue a 1) needs no Connect-RaftNode first.
            CurrentConnection.Set(new RaftConnection(running[0].Info.Address, running[0].Info.Port, _security));
            WriteVerbose($"Connected this session to node {running[0].Info.Id} ({new RaftEndpoint(running[0].Info.Address, running[0].Info.Port)}).");
        }
        foreach (var node in running) WriteObject(node.Info);
    }

    /// <summary>Stops with RaftServerNotFound or RaftServerNotRunnable unless this machine's server is in the module folder and can run.</summary>
    private void EnsureServer()
    {
        try
        {
            if (NodeLauncher.FindServer() is null)
                ThrowTerminatingError(new ErrorRecord(new FileNotFoundException(ServerLocator.Missing(NodeLauncher.ServerDirectory)),
                    "RaftServerNotFound", ErrorCategory.ObjectNotFound, NodeLauncher.ServerDirectory));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            ThrowTerminatingError(new ErrorRecord(new IOException($"The server for this machine could not be made executable: {e.Message}", e),
                "RaftServerNotRunnable", ErrorCategory.PermissionDenied, NodeLauncher.ServerDirectory));
        }
    }

    /// <summary>Starts the -NodeId nodes of a running cluster, joining it through <paramref name="join"/>.</summary>
    private void StartJoining(string join)
    {
        if (RaftEndpoint.TryParse(join) is not { } endpoint)
        {
            ThrowTerminatingError(new ErrorRecord(new ArgumentException($"-Join '{join}' is not HOST:PORT."), "RaftInvalidArgument", ErrorCategory.InvalidArgument, join));
            return;
        }
        EnsureServer();
        var dataDirectory = SessionState.Path.GetUnresolvedProviderPathFromPSPath(DataDirectory);
        if (Secure) PrepareSecure(dataDirectory, [endpoint.Host], joining: true);
        RaftMember[] members;
        try
        {
            members = Await(RaftOperations.ListMembersAsync(new RaftConnection(endpoint.Host, endpoint.Port, _security), TimeSpan.FromSeconds(TimeoutSec), Progress, Cancellation));
        }
        catch (RaftException e)
        {
            ThrowTerminatingError(RaftErrors.FromException(e, join));
            return;
        }
        var configPath = SessionState.Path.GetUnresolvedProviderPathFromPSPath(ConfigPath);
        var extra = Environment.GetEnvironmentVariable(ServerArgumentsVariable);
        var launched = new List<LaunchedNode>();
        foreach (var id in NodeId!.Distinct())
        {
            if (members.FirstOrDefault(m => m.Id == id) is not { } member)
            {
                WriteError(new ErrorRecord(new ItemNotFoundException($"Node {id} is not a member of the cluster of {join} (members: {string.Join(", ", members.Select(m => m.Id))}). Add it first: Add-RaftNode -Id {id} -Address HOST -Port PORT -AsLearner."),
                    RaftErrors.MemberNotFound, ErrorCategory.ObjectNotFound, id));
                continue;
            }
            if (NodeRegistry.Find(configPath, id) is { HasExited: false } already)
            {
                WriteError(new ErrorRecord(new InvalidOperationException($"Node {id} is already running (process {already.Info.ProcessId}). Stop it with Stop-RaftCluster first."),
                    "RaftNodeAlreadyRunning", ErrorCategory.ResourceExists, already.Info));
                continue;
            }
            if (!ShouldProcess($"node {id} ({new RaftEndpoint(member.Address, member.Port)})", $"Start, joining through {join}"))
                continue;
            try
            {
                var started = NodeLauncher.Start(new ConfigNode(id, member.Address, member.Port), configPath, dataDirectory, extra, join: endpoint.ToString(),
                    securityArguments: _secure?.ServerArguments(id));
                NodeRegistry.Add(started);
                launched.Add(started);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.ComponentModel.Win32Exception or InvalidOperationException)
            {
                WriteError(new ErrorRecord(e, "RaftNodeStartFailed", ErrorCategory.InvalidOperation, id));
            }
        }
        if (launched.Count == 0) return;
        Output(WaitUntilReady(launched, waitForLeader: false));
    }

    /// <summary>-Secure: makes (or reuses) the throwaway CA, certificates and admin token, and loads them for this cmdlet's calls.</summary>
    private void PrepareSecure(string dataDirectory, IEnumerable<string> hosts, bool joining = false)
    {
        try
        {
            _secure = SecureClusterFiles.Ensure(dataDirectory, hosts, anyHosts: joining);
            _security = _secure.ConnectionSecurity();
            WriteVerbose($"TLS and auth files: {_secure.Folder} (CA ca.pem, admin client certificate client.pem, admin token admin.token).");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            ThrowTerminatingError(new ErrorRecord(e, "RaftSecureSetupFailed", ErrorCategory.WriteError, Path.Combine(dataDirectory, SecureClusterFiles.FolderName)));
        }
    }

    /// <summary>
    /// -Count: the folder of the local cluster -Name, its config written on first use (free
    /// loopback ports) and reused after; null when -WhatIf or -Confirm declined making it.
    /// </summary>
    private string? PrepareLocalCluster()
    {
        var folder = UserFolders.LocalCluster(Name);
        try
        {
            if (LocalClusterFolder.Exists(folder))
            {
                LocalClusterFolder.CheckCount(folder, Name, Count);
                var configPath = LocalClusterFolder.ConfigPath(folder);
                var busy = LocalClusterFolder.NodesOnBusyPorts(folder, n => NodeRegistry.Find(configPath, n.Id) is { HasExited: false });
                if (busy.Count > 0)
                    ThrowTerminatingError(new ErrorRecord(new IOException(
                            $"The local cluster '{Name}' uses port(s) {string.Join(", ", busy.Select(n => n.Port))} on 127.0.0.1, and something else listens there: " +
                            "another PowerShell session may be running this cluster (stop it there with Stop-RaftCluster), or another program took the port. " +
                            $"Start a cluster of another name with -Name, or remove the folder to start afresh on free ports (its data goes with it): Remove-Item -Recurse '{folder}'"),
                        "RaftLocalClusterPortInUse", ErrorCategory.ResourceUnavailable, folder));
                return folder;
            }
            if (!ShouldProcess(LocalClusterFolder.ConfigPath(folder), $"Create the config of a local cluster of {Count} node(s)"))
                return null;
            LocalClusterFolder.Create(folder, Count);
            WriteVerbose($"Made the local cluster '{Name}' of {Count} node(s) in {folder}.");
            return folder;
        }
        catch (LocalClusterMismatchException e)
        {
            ThrowTerminatingError(new ErrorRecord(e, "RaftLocalClusterMismatch", ErrorCategory.InvalidArgument, folder));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            ThrowTerminatingError(new ErrorRecord(e, "RaftLocalClusterFailed", ErrorCategory.WriteError, folder));
        }
        return null;
    }

    /// <summary>RaftConfigNotFound; with no -ConfigPath, it says how to start without a config file.</summary>
    private ErrorRecord ConfigNotFound(string configPath)
    {
        var bound = MyInvocation.BoundParameters.ContainsKey(nameof(ConfigPath));
        var message = bound
            ? $"The config file '{configPath}' does not exist."
            : $"There is no {DefaultConfigFile} in '{Path.GetDirectoryName(configPath)}'. To try RaftPS on this machine, start a local cluster: " +
              "Start-RaftCluster -Count 3. For a cluster of your own machines, write its config with New-RaftClusterConfig -HostName <host1>,<host2>,<host3> " +
              "and start each node on its machine with Start-RaftCluster -NodeId <id>. Or name a config file: Start-RaftCluster -ConfigPath <path>.";
        return new ErrorRecord(new FileNotFoundException(message, configPath), "RaftConfigNotFound", ErrorCategory.ObjectNotFound, configPath)
        {
            ErrorDetails = new ErrorDetails(message)
            {
                RecommendedAction = bound ? "Check the path, or start a local cluster with Start-RaftCluster -Count 3." : "Start-RaftCluster -Count 3",
            },
        };
    }

    /// <summary>
    /// Polls the started nodes' Status until a leader is elected (all nodes) or every started node
    /// answers (-NodeId); reports each node that exits meanwhile with the end of its log.
    /// </summary>
    private List<LaunchedNode> WaitUntilReady(List<LaunchedNode> launched, bool waitForLeader)
    {
        var clock = Stopwatch.StartNew();
        var timeout = TimeSpan.FromSeconds(TimeoutSec);
        var alive = new List<LaunchedNode>(launched);
        var answered = new HashSet<int>();
        var activityId = 0x5AF0;
        try
        {
            while (true)
            {
                foreach (var node in alive.Where(n => n.HasExited).ToList())
                {
                    alive.Remove(node);
                    NodeRegistry.Remove(node);
                    WriteError(NodeExited(node));
                }
                if (alive.Count == 0) return alive;

                var polls = alive.Select(n => PollAsync(n.Info)).ToArray();
                WaitWithProgress(Task.WhenAll(polls));
                if (Cancellation.IsCancellationRequested) throw new PipelineStoppedException();
                var replies = polls.Select(p => p.Result).Where(r => r is not null).Select(r => r!).ToList();
                foreach (var reply in replies) answered.Add(reply.Id);

                var ready = waitForLeader
                    ? replies.Any(r => r.Role == Role.Leader)
                    : alive.All(n => answered.Contains(n.Info.Id));
                if (ready) return alive.Where(n => !n.HasExited).ToList();

                if (clock.Elapsed > timeout)
                {
                    var what = waitForLeader ? "no leader was elected" : "not every started node answered";
                    WriteError(new ErrorRecord(new TimeoutException($"The nodes were started, but {what} within {TimeoutSec} s. They keep running: see their logs ({string.Join(", ", alive.Select(n => n.Info.LogPath))}), and stop them with Stop-RaftCluster."),
                        "RaftClusterStartTimeout", ErrorCategory.OperationTimeout, ConfigPath));
                    return alive;
                }

                var status = waitForLeader
                    ? $"waiting for a leader: {replies.Count} of {alive.Count} nodes answer"
                    : $"waiting for the nodes: {answered.Count} of {alive.Count} answer";
                WriteProgress(new ProgressRecord(activityId, "Start-RaftCluster", status)
                {
                    PercentComplete = (int)Math.Min(99, 100 * clock.Elapsed.TotalSeconds / TimeoutSec),
                    SecondsRemaining = (int)Math.Max(0, (timeout - clock.Elapsed).TotalSeconds),
                });
                Cancellation.WaitHandle.WaitOne(150);
            }
        }
        finally
        {
            if (!Cancellation.IsCancellationRequested)
                WriteProgress(new ProgressRecord(activityId, "Start-RaftCluster", "done") { RecordType = ProgressRecordType.Completed });
        }
    }

    private async Task<StatusReply?> PollAsync(RaftNodeProcess node)
    {
        try
        {
            var client = ChannelCache.Get(new RaftEndpoint(node.Address, node.Port), _security);
            return await client.StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddMilliseconds(500), cancellationToken: Cancellation)
                .ResponseAsync.ConfigureAwait(false);
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.Unauthenticated or StatusCode.PermissionDenied)
        {
            // The node runs and refuses these calls (TLS or a token required, given by options of
            // its own): it answers, as a follower for all this poll can tell.
            return new StatusReply { Id = node.Id, Role = Role.Follower };
        }
        catch (Exception)
        {
            return null;
        }
    }

    private static ErrorRecord NodeExited(LaunchedNode node)
    {
        int? code = null;
        try { code = node.Process.ExitCode; } catch (InvalidOperationException) { }
        var message = $"Node {node.Info.Id} ({new RaftEndpoint(node.Info.Address, node.Info.Port)}) exited{(code is { } c ? $" with code {c}" : "")} during start-up. The end of its log ({node.Info.LogPath}):{Environment.NewLine}{NodeLauncher.TailLog(node)}";
        return new ErrorRecord(new InvalidOperationException(message), "RaftNodeExited", ErrorCategory.InvalidOperation, node.Info);
    }
}
