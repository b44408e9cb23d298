namespace RaftPS.Cluster;

/// <summary>
/// Makes a shipped server runnable on Linux and macOS. A module installed from a package has lost
/// the executable bit (a .nupkg is a zip that NuGet extracts without Unix modes): the bit is set
/// on the file itself, or, when the module folder is not ours to change (installed for all users
/// by root), on a copy in this user's folder.
/// </summary>
internal static class ExecutableFile
{
    private const UnixFileMode Execute = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    /// <summary>The path to run: <paramref name="path"/> itself, or a runnable copy of it.</summary>
    /// <exception cref="IOException">neither the file nor a copy could be made executable.</exception>
    /// <exception cref="UnauthorizedAccessException">neither the file nor a copy could be made executable.</exception>
    public static string EnsureRunnable(string path, string copyFolder)
    {
        if (OperatingSystem.IsWindows()) return path;
        var mode = File.GetUnixFileMode(path);
        // Executable for everyone: whoever owns the file, we may run it.
        if ((mode & Execute) == Execute) return path;
        try
        {
            File.SetUnixFileMode(path, mode | Execute);
            return path;
        }
        catch (UnauthorizedAccessException)
        {
            // Not the owner: fall through to a copy of our own.
        }
        catch (IOException)
        {
            // A read-only file system: the same.
        }
        return RunnableCopy(path, copyFolder);
    }

    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static string RunnableCopy(string path, string copyFolder)
    {
        var source = new FileInfo(path);
        // One copy per build of the server: its size and time stamp name it.
        var folder = Path.Combine(copyFolder, $"{source.Length:x}-{source.LastWriteTimeUtc.Ticks:x}");
        var copy = Path.Combine(folder, source.Name);
        if (File.Exists(copy) && new FileInfo(copy).Length == source.Length
            && (File.GetUnixFileMode(copy) & UnixFileMode.UserExecute) != 0)
            return copy;
        Directory.CreateDirectory(folder);
        var temp = copy + $".{Environment.ProcessId}.tmp";
        File.Copy(path, temp, overwrite: true);
        File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        // Renamed into place: another session starting a node at the same time never runs a half-written copy.
        File.Move(temp, copy, overwrite: true);
        return copy;
    }
}
