using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using RaftPS.Cluster;

namespace RaftPS.Cmdlets;

/// <summary>Completes -Name of Start-RaftCluster -Count with the local clusters in the user's folder.</summary>
public sealed class LocalClusterNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var typed = wordToComplete.Trim('\'', '"');
        try
        {
            if (!Directory.Exists(UserFolders.LocalClusters)) return [];
            return Directory.EnumerateDirectories(UserFolders.LocalClusters)
                .Where(LocalClusterFolder.Exists)
                .Select(Path.GetFileName)
                .Where(name => name!.StartsWith(typed, StringComparison.OrdinalIgnoreCase))
                .OrderBy(name => name, StringComparer.OrdinalIgnoreCase)
                .Select(name => new CompletionResult(name!, name!, CompletionResultType.ParameterValue,
                    $"{name}: {ClusterConfigFile.Read(LocalClusterFolder.ConfigPath(Path.Combine(UserFolders.LocalClusters, name!))).Count} node(s)"))
                .ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
