using System.Management.Automation;
using RaftPS.Client;
using RaftPS.Cluster;

namespace RaftPS.Cmdlets;

/// <summary>
/// Stop-RaftCluster: stops the nodes of a config that this session started (or the -NodeId ones).
/// Without -ConfigPath: those of ./config.conf if this session runs any, else every cluster this
/// session started (a local cluster of Start-RaftCluster -Count among them).
/// </summary>
[Cmdlet(VerbsLifecycle.Stop, "RaftCluster", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class StopRaftClusterCommand : PSCmdlet
{
    [Parameter(Position = 0)]
    [ValidateNotNullOrEmpty]
    public string ConfigPath { get; set; } = "config.conf";

    [Parameter]
    [ArgumentCompleter(typeof(NodeIdCompleter))]
    public int[]? NodeId { get; set; }

    protected override void EndProcessing()
    {
        var configPath = SessionState.Path.GetUnresolvedProviderPathFromPSPath(ConfigPath);
        var started = NodeRegistry.ForConfig(configPath);
        if (started.Count == 0 && !MyInvocation.BoundParameters.ContainsKey(nameof(ConfigPath)))
        {
            var configs = NodeRegistry.Configs();
            if (NodeId is not null && configs.Count > 1)
                ThrowTerminatingError(new ErrorRecord(new InvalidOperationException(
                        $"This session runs {configs.Count} clusters ({string.Join(", ", configs)}) and none of ./{ConfigPath}: name the one whose nodes to stop with -ConfigPath."),
                    "RaftClusterAmbiguous", ErrorCategory.InvalidArgument, NodeId));
            started = configs.SelectMany(NodeRegistry.ForConfig).ToList();
            if (configs.Count == 1) configPath = configs[0];
        }
        var targets = new List<LaunchedNode>();
        if (NodeId is null)
        {
            targets.AddRange(started);
        }
        else
        {
            foreach (var id in NodeId.Distinct())
            {
                if (started.FirstOrDefault(n => n.Info.Id == id) is { } node) targets.Add(node);
                else WriteError(new ErrorRecord(new ItemNotFoundException($"Node {id} of '{configPath}' was not started by this session."),
                    "RaftNodeNotStarted", ErrorCategory.ObjectNotFound, id));
            }
        }

        var confirmed = targets.Where(n => ShouldProcess($"node {n.Info.Id} ({new RaftEndpoint(n.Info.Address, n.Info.Port)}, process {n.Info.ProcessId})", "Stop")).ToList();
        // Stop them together: each gets its grace period at the same time.
        Parallel.ForEach(confirmed, node => NodeLauncher.Stop(node, TimeSpan.FromSeconds(2)));
        foreach (var node in confirmed)
        {
            NodeRegistry.Remove(node);
            WriteVerbose($"Stopped node {node.Info.Id} (process {node.Info.ProcessId}).");
        }
        // A current connection to a cluster that is now wholly stopped would only time out.
        if (CurrentConnection.Get() is { } current
            && confirmed.FirstOrDefault(n => n.Info.Port == current.Port && string.Equals(n.Info.Address, current.Address, StringComparison.OrdinalIgnoreCase)) is { } stopped
            && NodeRegistry.ForConfig(stopped.Info.ConfigPath).Count == 0)
        {
            CurrentConnection.Set(null);
            WriteVerbose($"Cleared the current connection ({current}): its cluster is stopped.");
        }
    }
}
