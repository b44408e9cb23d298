using System.Diagnostics;
using System.Management.Automation;
using RaftPS.Client;
using RaftPS.Cluster;

namespace RaftPS.Cmdlets;

/// <summary>
/// Add-RaftNode: adds a node to the cluster the safe way: as a learner (it receives the log and
/// does not count for any majority), then, once its log has caught up with the commit index, as
/// a voter (etcd's member add --learner, then member promote). -AsLearner stops after the first
/// step. -Start also starts a local server process for the node, joining through the connection.
/// A node on another host is started there with <c>RaftServer ID --join HOST:PORT</c>; this cmdlet
/// waits (with progress) for it to catch up. Run it again for a learner to promote it.
/// </summary>
[Cmdlet(VerbsCommon.Add, "RaftNode", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(RaftMember))]
public sealed class AddRaftNodeCommand : RaftConnectedCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateRange(0, int.MaxValue)]
    public int Id { get; set; }

    /// <summary>Where the new node's server listens (a host name or IP address its peers can reach).</summary>
    [Parameter(Position = 1, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string Address { get; set; } = "127.0.0.1";

    [Parameter(Mandatory = true, Position = 2, ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, 65535)]
    public int Port { get; set; }

    /// <summary>Add it as a learner only (promote it later by running Add-RaftNode again).</summary>
    [Parameter]
    public SwitchParameter AsLearner { get; set; }

    /// <summary>Start a local server process for the node (it joins through the connection's node).</summary>
    [Parameter]
    public SwitchParameter Start { get; set; }

    /// <summary>With -Start: the folder of the nodes' data directories (node-ID inside).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string DataDirectory { get; set; } = "data";

    /// <summary>With -Start: the config the node is grouped with, so Stop-RaftCluster -ConfigPath stops it too.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string ConfigPath { get; set; } = "config.conf";

    /// <summary>How long to wait for the node to catch up before promoting it.</summary>
    [Parameter]
    [ValidateRange(1, 86400)]
    public int CatchUpTimeoutSec { get; set; } = 300;

    [Parameter]
    [RaftConnectionTransformation]
    public RaftConnection? Connection { get; set; }

    protected override RaftConnection? ConnectionParameter => Connection;

    protected override string ProgressActivity => $"Add-RaftNode {Id}";

    protected override void ProcessRecord()
    {
        var connection = ResolveConnection();
        var target = $"node {Id} ({Address}:{Port})";
        if (!ShouldProcess(target, AsLearner ? "Add as a learner" : "Add as a learner, then as a voter once caught up"))
            return;

        if (!TryCall(ct => RaftOperations.ListMembersAsync(connection, Timeout, Progress, ct), Id, out var members))
            return;
        if (members.FirstOrDefault(m => m.Id == Id) is { } existing)
        {
            if (!string.Equals(existing.Address, Address, StringComparison.OrdinalIgnoreCase) || existing.Port != Port)
            {
                WriteError(new ErrorRecord(new InvalidOperationException($"Node {Id} is already a member at {new RaftEndpoint(existing.Address, existing.Port)}. A node that moves is replaced: add it under a new id, then remove node {Id}."),
                    RaftErrors.MemberExists, ErrorCategory.ResourceExists, existing));
                return;
            }
            if (existing.Role == RaftMemberRole.Voter)
            {
                WriteVerbose($"Node {Id} is already a voter.");
                WriteObject(existing);
                return;
            }
            WriteVerbose($"Node {Id} is already a learner: it is promoted once caught up.");
        }
        else if (!TryCall(ct => RaftOperations.AddMemberAsync(connection, Id, Address, Port, learner: true, Timeout, Progress, ct), Id, out _))
        {
            return;
        }

        if (Start && !StartLocalNode(connection)) return;

        if (!AsLearner)
        {
            if (!WaitForCatchUp(connection)) return;
            if (!Promote(connection)) return;
        }
        if (TryCall(ct => RaftOperations.ListMembersAsync(connection, Timeout, Progress, ct), Id, out members)
            && members.FirstOrDefault(m => m.Id == Id) is { } added)
            WriteObject(added);
    }

    private bool StartLocalNode(RaftConnection connection)
    {
        try
        {
            if (NodeLauncher.FindServer() is null)
            {
                WriteError(new ErrorRecord(new FileNotFoundException(ServerLocator.Missing(NodeLauncher.ServerDirectory)),
                    "RaftServerNotFound", ErrorCategory.ObjectNotFound, NodeLauncher.ServerDirectory));
                return false;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            WriteError(new ErrorRecord(new IOException($"The server for this machine could not be made executable: {e.Message}", e),
                "RaftServerNotRunnable", ErrorCategory.PermissionDenied, NodeLauncher.ServerDirectory));
            return false;
        }
        var configPath = SessionState.Path.GetUnresolvedProviderPathFromPSPath(ConfigPath);
        if (NodeRegistry.Find(configPath, Id) is { HasExited: false } running)
        {
            WriteVerbose($"Node {Id} is already running (process {running.Info.ProcessId}).");
            return true;
        }
        var dataDirectory = SessionState.Path.GetUnresolvedProviderPathFromPSPath(DataDirectory);
        // A cluster started with Start-RaftCluster -Secure: the new node gets the same client TLS and
        // auth options, and a peer certificate of its own from the cluster's CA.
        var secure = SecureClusterFiles.Find(dataDirectory);
        if (secure is null && connection.UseTls)
        {
            WriteError(new ErrorRecord(new InvalidOperationException(
                    $"The cluster serves TLS, and {System.IO.Path.Combine(dataDirectory, SecureClusterFiles.FolderName)} holds no files of a Start-RaftCluster -Secure cluster to start node {Id} with. " +
                    "Give the -DataDirectory the cluster was started with, or start the node yourself with its TLS options (RaftServer ID --join HOST:PORT --cert-file ... --peer-cert-file ...)."),
                "RaftSecureFilesMissing", ErrorCategory.ObjectNotFound, dataDirectory));
            return false;
        }
        try
        {
            var started = NodeLauncher.Start(new ConfigNode(Id, Address, Port), configPath, dataDirectory,
                Environment.GetEnvironmentVariable(StartRaftClusterCommand.ServerArgumentsVariable), join: connection.Endpoint.ToString(),
                securityArguments: secure?.ServerArguments(Id));
            NodeRegistry.Add(started);
            WriteVerbose($"Started node {Id} as process {started.Info.ProcessId}, joining through {connection}; log: {started.Info.LogPath}");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.ComponentModel.Win32Exception or InvalidOperationException
                                  or System.Security.Cryptography.CryptographicException)
        {
            WriteError(new ErrorRecord(e, "RaftNodeStartFailed", ErrorCategory.InvalidOperation, Id));
            return false;
        }
    }

    /// <summary>Waits until the leader sees the node keep pace with the commit index, showing how far behind it is.</summary>
    private bool WaitForCatchUp(RaftConnection connection)
    {
        var clock = Stopwatch.StartNew();
        var deadline = TimeSpan.FromSeconds(CatchUpTimeoutSec);
        var activityId = 0x5AF1;
        var configPath = SessionState.Path.GetUnresolvedProviderPathFromPSPath(ConfigPath);
        try
        {
            while (true)
            {
                if (!TryCall(ct => RaftOperations.ListMembersAsync(connection, Timeout, Progress, ct), Id, out var members))
                    return false;
                var member = members.FirstOrDefault(m => m.Id == Id);
                if (member is null)
                {
                    WriteError(new ErrorRecord(new InvalidOperationException($"Node {Id} is no longer a member: another change removed it."),
                        RaftErrors.MemberNotFound, ErrorCategory.ObjectNotFound, Id));
                    return false;
                }
                if (member.CaughtUp == true && member.Reachable == true) return true;
                if (Start && NodeRegistry.Find(configPath, Id) is { HasExited: true } exited)
                {
                    WriteError(new ErrorRecord(new InvalidOperationException($"Node {Id}'s process exited. The end of its log ({exited.Info.LogPath}):{Environment.NewLine}{NodeLauncher.TailLog(exited)}"),
                        "RaftNodeExited", ErrorCategory.InvalidOperation, exited.Info));
                    return false;
                }
                if (clock.Elapsed > deadline)
                {
                    WriteError(new ErrorRecord(new TimeoutException($"Node {Id} did not catch up within {CatchUpTimeoutSec} s ({Describe(member)}). It stays a learner: start its server if it is not running (RaftServer {Id} --join {connection} --data-dir DIR), then run Add-RaftNode again to promote it."),
                        "RaftCatchUpTimeout", ErrorCategory.OperationTimeout, member)
                    {
                        ErrorDetails = new ErrorDetails($"Node {Id} did not catch up within {CatchUpTimeoutSec} s.")
                        {
                            RecommendedAction = $"Start node {Id}'s server (RaftServer {Id} --join {connection}), then run Add-RaftNode -Id {Id} -Address {Address} -Port {Port} again.",
                        },
                    });
                    return false;
                }
                WriteProgress(new ProgressRecord(activityId, $"Add-RaftNode {Id}", $"catching up: {Describe(member)}")
                {
                    SecondsRemaining = (int)Math.Max(0, (deadline - clock.Elapsed).TotalSeconds),
                });
                if (Cancellation.WaitHandle.WaitOne(250)) throw new PipelineStoppedException();
            }
        }
        finally
        {
            if (!Cancellation.IsCancellationRequested)
                WriteProgress(new ProgressRecord(activityId, $"Add-RaftNode {Id}", "done") { RecordType = ProgressRecordType.Completed });
        }
    }

    private static string Describe(RaftMember m) => m.Reachable != true
        ? "not reachable yet: is its server running?"
        : m.Behind is { } behind ? $"{behind:N0} committed entries behind" : "its progress is not known yet";

    /// <summary>Promotes the learner. A refusal is retried for a few seconds: the learner may have
    /// fallen behind again (writes kept coming), or another change may be finishing.</summary>
    private bool Promote(RaftConnection connection)
    {
        var clock = Stopwatch.StartNew();
        var patience = TimeSpan.FromSeconds(Math.Min(15, CatchUpTimeoutSec));
        while (true)
        {
            try
            {
                Await(RaftOperations.PromoteMemberAsync(connection, Id, Timeout, Progress, Cancellation));
                return true;
            }
            catch (RaftException e) when (e.Kind == RaftErrorKind.Refused && clock.Elapsed < patience)
            {
                WriteVerbose($"Promotion refused, retrying: {e.Message}");
                if (Cancellation.WaitHandle.WaitOne(100)) throw new PipelineStoppedException();
            }
            catch (RaftException e)
            {
                WriteError(RaftErrors.FromException(e, Id));
                return false;
            }
        }
    }
}
