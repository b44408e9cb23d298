using System.Runtime.InteropServices;

namespace RaftPS.Cluster;

/// <summary>A server binary to run: a native executable, or a framework-dependent dll run by dotnet.</summary>
internal sealed record ServerBinary(string Path, string? RuntimeIdentifier)
{
    public bool RunsUnderDotnet => Path.EndsWith(".dll", StringComparison.OrdinalIgnoreCase);
}

/// <summary>
/// Finds the server for this machine in the module folder: <c>server/&lt;rid&gt;/RaftServer[.exe]</c>
/// for the operating system and architecture PowerShell runs on (the package ships win-x64,
/// linux-x64, linux-arm64, osx-x64 and osx-arm64), else <c>server/RaftServer.dll</c>, the
/// framework-dependent server of a `build.ps1 -Portable` build, run by dotnet.
/// </summary>
internal static class ServerLocator
{
    public const string PortableDll = "RaftServer.dll";

    /// <summary>The runtime identifiers a package built by build.ps1 ships.</summary>
    public static readonly string[] ShippedRuntimes = ["win-x64", "linux-x64", "linux-arm64", "osx-x64", "osx-arm64"];

    public static string ExecutableName(string runtimeIdentifier) =>
        runtimeIdentifier.StartsWith("win-", StringComparison.Ordinal) ? "RaftServer.exe" : "RaftServer";

    /// <summary>
    /// The servers that run on a machine, best first: its own runtime identifier, then one its
    /// emulation runs (x64 on Windows on Arm, x64 under Rosetta 2 on an Apple silicon Mac). Linux
    /// with musl (Alpine) needs linux-musl builds, which the package does not ship.
    /// </summary>
    internal static string[] CandidateRuntimes(string os, Architecture architecture, bool musl)
    {
        var arch = architecture switch
        {
            Architecture.X64 => "x64",
            Architecture.Arm64 => "arm64",
            Architecture.X86 => "x86",
            Architecture.Arm => "arm",
            _ => architecture.ToString().ToLowerInvariant(),
        };
        return os switch
        {
            "windows" => arch == "arm64" ? ["win-arm64", "win-x64"] : [$"win-{arch}"],
            "osx" => arch == "arm64" ? ["osx-arm64", "osx-x64"] : [$"osx-{arch}"],
            "linux" => [musl ? $"linux-musl-{arch}" : $"linux-{arch}"],
            _ => [],
        };
    }

    /// <summary>This machine's candidates (see <see cref="CandidateRuntimes"/>).</summary>
    public static string[] CurrentCandidates()
    {
        var os = OperatingSystem.IsWindows() ? "windows" : OperatingSystem.IsMacOS() ? "osx" : OperatingSystem.IsLinux() ? "linux" : "other";
        // The runtime PowerShell runs on was built for glibc or musl; its identifier says which.
        var musl = RuntimeInformation.RuntimeIdentifier.Contains("musl", StringComparison.OrdinalIgnoreCase);
        return CandidateRuntimes(os, RuntimeInformation.OSArchitecture, musl);
    }

    /// <summary>The server in <paramref name="serverDirectory"/> for this machine; null when there is none.</summary>
    public static ServerBinary? Find(string serverDirectory) => Find(serverDirectory, CurrentCandidates());

    internal static ServerBinary? Find(string serverDirectory, IEnumerable<string> candidates)
    {
        foreach (var rid in candidates)
        {
            var path = System.IO.Path.Combine(serverDirectory, rid, ExecutableName(rid));
            if (File.Exists(path)) return new ServerBinary(path, rid);
        }
        var dll = System.IO.Path.Combine(serverDirectory, PortableDll);
        return File.Exists(dll) ? new ServerBinary(dll, null) : null;
    }

    /// <summary>What to tell the user when <see cref="Find(string)"/> finds nothing.</summary>
    public static string Missing(string serverDirectory)
    {
        var candidates = CurrentCandidates();
        var present = Directory.Exists(serverDirectory)
            ? Directory.EnumerateDirectories(serverDirectory).Select(System.IO.Path.GetFileName).OrderBy(n => n, StringComparer.Ordinal).ToList()
            : [];
        var machine = candidates.Length > 0 ? candidates[0] : $"{RuntimeInformation.OSDescription} {RuntimeInformation.OSArchitecture}";
        return $"RaftPS has no server for this machine ({machine}) in '{serverDirectory}'" +
            (present.Count > 0 ? $" (it holds: {string.Join(", ", present)})" : "") +
            $". The package ships servers for {string.Join(", ", ShippedRuntimes)}. On another platform, build the module from its repository " +
            "(dotnet pwsh ./build.ps1 build, or with -Portable to run the server under an installed .NET 10).";
    }
}
