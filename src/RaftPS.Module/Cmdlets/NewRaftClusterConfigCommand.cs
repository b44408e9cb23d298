using System.Management.Automation;
using RaftPS.Client;
using RaftPS.Cluster;

namespace RaftPS.Cmdlets;

/// <summary>
/// New-RaftClusterConfig: writes a config.conf (<c>ID HOST PORT</c> per node) for the given hosts,
/// ids from 0 in the order given. Nothing is written when an entry is wrong.
/// </summary>
[Cmdlet(VerbsCommon.New, "RaftClusterConfig", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(FileInfo))]
public sealed class NewRaftClusterConfigCommand : PSCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
    [ValidateNotNullOrEmpty]
    public string[] HostName { get; set; } = [];

    [Parameter]
    [ValidateRange(1, 65535)]
    public int Port { get; set; } = 50000;

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "config.conf";

    [Parameter]
    public SwitchParameter Force { get; set; }

    private readonly List<string> _entries = new();

    protected override void ProcessRecord() => _entries.AddRange(HostName);

    protected override void EndProcessing()
    {
        var parsed = new List<HostEntry>();
        var valid = true;
        foreach (var text in _entries)
        {
            if (HostEntry.Parse(text) is { } entry)
            {
                parsed.Add(entry);
                continue;
            }
            valid = false;
            WriteError(new ErrorRecord(new ArgumentException(
                    $"'{text}' is not a host: give a host name or an IP address, optionally with a port (db1, db1.example.com:50000, 10.0.0.5:50000, fd00::5, [fd00::5]:50000)."),
                "RaftInvalidHost", ErrorCategory.InvalidArgument, text));
        }
        if (!valid) return;

        var nodes = HostEntry.Assign(parsed, Port);
        foreach (var clash in nodes.GroupBy(n => (Host: n.Host.ToLowerInvariant(), n.Port)).Where(g => g.Count() > 1))
        {
            valid = false;
            WriteError(new ErrorRecord(new ArgumentException(
                    $"Nodes {string.Join(" and ", clash.Select(n => n.Id))} would both use {new RaftEndpoint(clash.First().Host, clash.Key.Port)}: give them different ports."),
                "RaftDuplicateEndpoint", ErrorCategory.InvalidArgument, new RaftEndpoint(clash.First().Host, clash.Key.Port).ToString()));
        }
        if (nodes.Any(n => n.Port > 65535))
        {
            valid = false;
            WriteError(new ErrorRecord(new ArgumentException($"-Port {Port} leaves no room for {nodes.Count} nodes on one host below port 65536."),
                "RaftInvalidHost", ErrorCategory.InvalidArgument, Port));
        }
        if (!valid) return;

        var path = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
        if (File.Exists(path) && !Force)
        {
            WriteError(new ErrorRecord(new IOException($"The file '{path}' already exists. Use -Force to replace it."),
                "RaftConfigExists", ErrorCategory.ResourceExists, path));
            return;
        }
        if (nodes.Count % 2 == 0)
            WriteWarning($"A cluster of {nodes.Count} nodes survives as many failed nodes as one of {nodes.Count - 1}: a majority of {nodes.Count / 2 + 1} must be up.");
        if (!ShouldProcess(path, $"Write the config of a cluster of {nodes.Count} node(s)")) return;
        try
        {
            ClusterConfigFile.Write(path, nodes, "RaftPS cluster config, written by New-RaftClusterConfig.");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            WriteError(new ErrorRecord(e, "RaftConfigWriteFailed", ErrorCategory.WriteError, path));
            return;
        }
        WriteObject(new FileInfo(path));
    }
}
