using System.Management.Automation;
using RaftPS.Cluster;

namespace RaftPS.Cmdlets;

/// <summary>Stop-RaftCluster: stops the nodes of a config that this session started (or the -NodeId ones).</summary>
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

        var confirmed = targets.Where(n => ShouldProcess($"node {n.Info.Id} ({n.Info.Address}:{n.Info.Port}, process {n.Info.ProcessId})", "Stop")).ToList();
        // Stop them together: each gets its grace period at the same time.
        Parallel.ForEach(confirmed, node => NodeLauncher.Stop(node, TimeSpan.FromSeconds(2)));
        foreach (var node in confirmed)
        {
            NodeRegistry.Remove(node);
            WriteVerbose($"Stopped node {node.Info.Id} (process {node.Info.ProcessId}).");
        }
    }
}
