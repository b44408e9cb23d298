using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using System.Management.Automation.Runspaces;
using RaftPS.Client;
using RaftPS.Cluster;

namespace RaftPS.Cmdlets;

/// <summary>Completes -NodeId with the ids of the config (-ConfigPath, else ./config.conf).</summary>
public sealed class NodeIdCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var configPath = fakeBoundParameters?["ConfigPath"] as string ?? "config.conf";
        IReadOnlyList<ConfigNode> nodes;
        try
        {
            nodes = ClusterConfigFile.Read(CompletionPaths.Resolve(configPath));
        }
        catch (Exception)
        {
            return [];
        }
        var typed = wordToComplete.Trim('\'', '"');
        return nodes
            .Where(n => n.Id.ToString(System.Globalization.CultureInfo.InvariantCulture).StartsWith(typed, StringComparison.Ordinal))
            .Select(n => new CompletionResult(n.Id.ToString(System.Globalization.CultureInfo.InvariantCulture),
                $"{n.Id} ({new RaftEndpoint(n.Host, n.Port)})", CompletionResultType.ParameterValue, $"node {n.Id} at {new RaftEndpoint(n.Host, n.Port)}"))
            .ToList();
    }
}

/// <summary>Completes a member id (-Id, -To) with the members this session has seen (Get-RaftMember,
/// Get-RaftStatus), else the ids of ./config.conf.</summary>
public sealed class MemberIdCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var typed = wordToComplete.Trim('\'', '"');
        var known = KnownMembers.All;
        if (known.Count == 0)
            return new NodeIdCompleter().CompleteArgument(commandName, parameterName, wordToComplete, commandAst, fakeBoundParameters);
        return known
            .Where(m => m.Id.ToString(System.Globalization.CultureInfo.InvariantCulture).StartsWith(typed, StringComparison.Ordinal))
            .Select(m => new CompletionResult(m.Id.ToString(System.Globalization.CultureInfo.InvariantCulture),
                $"{m.Id} ({new RaftEndpoint(m.Address, m.Port)}{(m.Role == RaftMemberRole.Learner ? ", learner" : "")})", CompletionResultType.ParameterValue, m.ToString()))
            .ToList();
    }
}

/// <summary>Completes -Key with the keys this session has set, read, or listed.</summary>
public sealed class KeyCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var typed = wordToComplete.Trim('\'', '"');
        return KeyHistory.StartingWith(typed)
            .Take(500)
            .Select(key => new CompletionResult(Quote(key), key, CompletionResultType.ParameterValue, key))
            .ToList();
    }

    internal static string Quote(string key) =>
        key.Length > 0 && key.All(c => char.IsLetterOrDigit(c) || c is '_' or '-' or '.' or '/' or ':') && !char.IsDigit(key[0]) && key[0] != '-'
            ? key
            : "'" + key.Replace("'", "''") + "'";
}

/// <summary>Completes -Name of Lock-RaftKey with the lock names this session used.</summary>
public sealed class LockNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var typed = wordToComplete.Trim('\'', '"');
        return LockNames.StartingWith(typed)
            .Select(name => new CompletionResult(KeyCompleter.Quote(name), name, CompletionResultType.ParameterValue, $"lock {name}"))
            .ToList();
    }
}

internal static class CompletionPaths
{
    /// <summary>A path relative to PowerShell's current location (not the process's).</summary>
    public static string Resolve(string path)
    {
        if (Path.IsPathRooted(path)) return path;
        string? location = null;
        try
        {
            // A nested pipeline in the runspace running the completion sees PowerShell's location.
            using var shell = System.Management.Automation.PowerShell.Create(RunspaceMode.CurrentRunspace);
            shell.AddScript("$ExecutionContext.SessionState.Path.CurrentFileSystemLocation.ProviderPath");
            location = shell.Invoke().FirstOrDefault()?.BaseObject as string;
        }
        catch (Exception)
        {
            // No runspace, or no file system location: fall back to the process's directory.
        }
        return Path.GetFullPath(path, location ?? Environment.CurrentDirectory);
    }
}
