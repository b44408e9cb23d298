using System.Diagnostics;
using System.Management.Automation;
using RaftPS.Client;
using RaftPS.Cluster;
using RaftPS.Protocol;
using RaftMember = RaftPS.RaftMember;

namespace RaftPS.Cmdlets;

/// <summary>
/// Start-RaftCluster: one server process per node of the config (or the -NodeId ones), from the
/// server binaries shipped in the module folder. With all nodes it returns once a leader is
/// elected; with -NodeId, once the started nodes answer.
/// </summary>
[Cmdlet(VerbsLifecycle.Start, "RaftCluster", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low, DefaultParameterSetName = "Config")]
[OutputType(typeof(RaftNodeProcess))]
public sealed class StartRaftClusterCommand : RaftCmdlet
{
    /// <summary>Extra server arguments (e.g. "--election-timeout-ms 300"), for tests and tuning.</summary>
    public const string ServerArgumentsVariable = "RAFTPS_SERVER_ARGS";

    [Parameter(Position = 0)]
    [ValidateNotNullOrEmpty]
    public string ConfigPath { get; set; } = "config.conf";

    [Parameter(ParameterSetName = "Config")]
    [Parameter(ParameterSetName = "Join", Mandatory = true)]
    [ArgumentCompleter(typeof(NodeIdCompleter))]
    public int[]? NodeId { get; set; }

    /// <summary>
    /// A member of a running cluster (HOST:PORT): the -NodeId nodes join it (each must have been
    /// added, e.g. by Add-RaftNode -AsLearner); their addresses come from the cluster, not the config.
    /// Also restarts such a node (its data directory then holds the cluster's configuration).
    /// </summary>
    [Parameter(ParameterSetName = "Join", Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string? Join { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string DataDirectory { get; set; } = "data";

    [Parameter]
    [ValidateRange(1, 3600)]
    public int TimeoutSec { get; set; } = 30;

    protected override string ProgressActivity => "Start-RaftCluster";

    protected override void EndProcessing()
    {
        if (Join is not null)
        {
            StartJoining(Join);
            return;
        }
        var configPath = SessionState.Path.GetUnresolvedProviderPathFromPSPath(ConfigPath);
        if (!File.Exists(configPath))
            ThrowTerminatingError(new ErrorRecord(new FileNotFoundException($"The config file '{configPath}' does not exist.", configPath),
                "RaftConfigNotFound", ErrorCategory.ObjectNotFound, configPath));
        var configNodes = ClusterConfigFile.Read(configPath);
        if (configNodes.Count == 0)
            ThrowTerminatingError(new ErrorRecord(new FormatException($"The config file '{configPath}' lists no node as 'ID HOST PORT'."),
                "RaftConfigInvalid", ErrorCategory.InvalidArgument, configPath));
        if (NodeLauncher.FindServer() is null)
            ThrowTerminatingError(new ErrorRecord(new FileNotFoundException(
                    $"The server binaries are missing: neither {NodeLauncher.ServerExecutable} nor {NodeLauncher.ServerDll} is in '{NodeLauncher.ServerDirectory}'. Build the module with build.ps1."),
                "RaftServerNotFound", ErrorCategory.ObjectNotFound, NodeLauncher.ServerDirectory));
        var dataDirectory = SessionState.Path.GetUnresolvedProviderPathFromPSPath(DataDirectory);

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
            if (!ShouldProcess($"node {node.Id} ({node.Host}:{node.Port})", "Start"))
                continue;
            LaunchedNode started;
            try
            {
                started = NodeLauncher.Start(node, configPath, dataDirectory, extra);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.ComponentModel.Win32Exception or InvalidOperationException)
            {
                WriteError(new ErrorRecord(e, "RaftNodeStartFailed", ErrorCategory.InvalidOperation, node.Id));
                continue;
            }
            NodeRegistry.Add(started);
            WriteVerbose($"Started node {node.Id} ({node.Host}:{node.Port}) as process {started.Info.ProcessId}; log: {started.Info.LogPath}");
            launched.Add(started);
        }
        if (launched.Count == 0) return;

        var running = WaitUntilReady(launched, waitForLeader: NodeId is null);
        foreach (var node in running) WriteObject(node.Info);
    }

    /// <summary>Starts the -NodeId nodes of a running cluster, joining it through <paramref name="join"/>.</summary>
    private void StartJoining(string join)
    {
        if (RaftEndpoint.TryParse(join) is not { } endpoint)
        {
            ThrowTerminatingError(new ErrorRecord(new ArgumentException($"-Join '{join}' is not HOST:PORT."), "RaftInvalidArgument", ErrorCategory.InvalidArgument, join));
            return;
        }
        if (NodeLauncher.FindServer() is null)
            ThrowTerminatingError(new ErrorRecord(new FileNotFoundException(
                    $"The server binaries are missing: neither {NodeLauncher.ServerExecutable} nor {NodeLauncher.ServerDll} is in '{NodeLauncher.ServerDirectory}'. Build the module with build.ps1."),
                "RaftServerNotFound", ErrorCategory.ObjectNotFound, NodeLauncher.ServerDirectory));
        RaftMember[] members;
        try
        {
            members = Await(RaftOperations.ListMembersAsync(new RaftConnection(endpoint.Host, endpoint.Port), TimeSpan.FromSeconds(TimeoutSec), Progress, Cancellation));
        }
        catch (RaftException e)
        {
            ThrowTerminatingError(RaftErrors.FromException(e, join));
            return;
        }
        var configPath = SessionState.Path.GetUnresolvedProviderPathFromPSPath(ConfigPath);
        var dataDirectory = SessionState.Path.GetUnresolvedProviderPathFromPSPath(DataDirectory);
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
            if (!ShouldProcess($"node {id} ({member.Address}:{member.Port})", $"Start, joining through {join}"))
                continue;
            try
            {
                var started = NodeLauncher.Start(new ConfigNode(id, member.Address, member.Port), configPath, dataDirectory, extra, join: endpoint.ToString());
                NodeRegistry.Add(started);
                launched.Add(started);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.ComponentModel.Win32Exception or InvalidOperationException)
            {
                WriteError(new ErrorRecord(e, "RaftNodeStartFailed", ErrorCategory.InvalidOperation, id));
            }
        }
        if (launched.Count == 0) return;
        foreach (var node in WaitUntilReady(launched, waitForLeader: false)) WriteObject(node.Info);
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
            var client = ChannelCache.Get(new RaftEndpoint(node.Address, node.Port));
            return await client.StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddMilliseconds(500), cancellationToken: Cancellation)
                .ResponseAsync.ConfigureAwait(false);
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
        var message = $"Node {node.Info.Id} ({node.Info.Address}:{node.Info.Port}) exited{(code is { } c ? $" with code {c}" : "")} during start-up. The end of its log ({node.Info.LogPath}):{Environment.NewLine}{NodeLauncher.TailLog(node)}";
        return new ErrorRecord(new InvalidOperationException(message), "RaftNodeExited", ErrorCategory.InvalidOperation, node.Info);
    }
}
