using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.WindowsServices;

namespace RaftServer.Hosting;

/// <summary>
/// Running a node under a service manager (docs/operations.md): systemd (<c>Type=notify</c>: ready
/// once the node listens, stopping on SIGTERM) and the Windows service control manager (start,
/// stop). Outside a service manager nothing here changes how the process runs.
/// </summary>
internal static class ServiceHosting
{
    /// <summary>
    /// Registers the lifetimes of both managers. Each checks at start-up whether the process was
    /// started by its manager (systemd: the parent process is systemd; Windows: by the SCM) and does
    /// nothing otherwise, so the console lifetime (Ctrl+C, SIGTERM) stays in force.
    /// </summary>
    public static void AddServiceLifetimes(IServiceCollection services)
    {
        services.AddSystemd();
        // The name is the one the SCM passes; an own-process service answers to whatever name it
        // was installed under, so several nodes can be services on one machine.
        services.AddWindowsService(o => o.ServiceName = "RaftServer");
    }

    /// <summary>
    /// A Windows service starts in %SystemRoot%\System32: relative paths (--config, --data-dir,
    /// --log-file) are then taken from the executable's folder, as ASP.NET Core's UseWindowsService
    /// does with the content root.
    /// </summary>
    public static void UseExecutableFolderIfWindowsService()
    {
        if (OperatingSystem.IsWindows() && WindowsServiceHelpers.IsWindowsService())
            Directory.SetCurrentDirectory(AppContext.BaseDirectory);
    }

    /// <summary>
    /// --log-file: stdout and stderr (the logger's lines and the one-line errors) are appended to
    /// <paramref name="path"/> instead. A Windows service has no console; a systemd unit needs no
    /// file (the journal reads stdout). Others may read, rename or delete the file while the node
    /// writes it (log rotation).
    /// </summary>
    /// <exception cref="IOException">the file cannot be opened.</exception>
    /// <exception cref="UnauthorizedAccessException">the file cannot be opened.</exception>
    public static TextWriter RedirectOutput(string path)
    {
        var full = Path.GetFullPath(path);
        if (Path.GetDirectoryName(full) is { } folder) Directory.CreateDirectory(folder);
        var stream = new FileStream(full, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
        var writer = TextWriter.Synchronized(new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true });
        Console.SetOut(writer);
        Console.SetError(writer);
        return writer;
    }
}
