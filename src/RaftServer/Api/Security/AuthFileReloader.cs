using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace RaftServer.Api.Security;

/// <summary>
/// Rereads --auth-file while the node runs, so users are added, removed or given another role
/// without a restart: when the file's size or modification time changes (checked every
/// <see cref="PollInterval"/>) and at once on SIGHUP (Linux and macOS; SIGHUP would otherwise
/// end the process). A file that cannot be read, is malformed or lists no user changes nothing:
/// the users before it stay in effect and the error is logged once per change of the file.
/// Calls already checked are not checked again.
/// </summary>
public sealed class AuthFileReloader : IDisposable
{
    public static readonly TimeSpan DefaultPollInterval = TimeSpan.FromSeconds(1);

    private readonly string _path;
    private readonly ClientAccess _access;
    private readonly ILogger _logger;
    private readonly Timer _timer;
    private readonly PosixSignalRegistration? _hangUp;
    private readonly Lock _gate = new();
    private (long Length, DateTime WrittenUtc) _seen;

    /// <param name="access">Started with the users of <paramref name="path"/>.</param>
    public AuthFileReloader(string path, ClientAccess access, ILogger logger, TimeSpan? pollInterval = null)
    {
        _path = path;
        _access = access;
        _logger = logger;
        _seen = Stamp();
        PollInterval = pollInterval ?? DefaultPollInterval;
        _timer = new Timer(_ => ReloadIfChanged(), null, PollInterval, PollInterval);
        if (!OperatingSystem.IsWindows())
            _hangUp = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
            {
                context.Cancel = true;
                Reload("SIGHUP");
            });
    }

    public TimeSpan PollInterval { get; }

    /// <summary>Rereads the file if its size or modification time changed since it was last read.</summary>
    /// <returns>Whether it was reread.</returns>
    public bool ReloadIfChanged()
    {
        lock (_gate)
        {
            if (Stamp() == _seen) return false;
            Reload("the file changed");
            return true;
        }
    }

    /// <summary>Rereads the file now.</summary>
    /// <returns>Whether the users were replaced (false: the file was refused and the users before it stay).</returns>
    public bool Reload(string reason)
    {
        lock (_gate)
        {
            _seen = Stamp();
            ClientUsers users;
            try
            {
                users = ClientSecurity.LoadUsers(_path);
                _access.ReplaceUsers(users);
            }
            catch (InvalidDataException e)
            {
                _logger.LogError("Did not reload the users ({Reason}): {Message}; the users before it stay in effect", reason, e.Message);
                return false;
            }
            _logger.LogInformation("Reloaded the users of --auth-file {Path} ({Reason}): {Count} users: {Users}", _path, reason, users.Count, users);
            return true;
        }
    }

    private (long, DateTime) Stamp()
    {
        try
        {
            var info = new FileInfo(_path);
            return info.Exists ? (info.Length, info.LastWriteTimeUtc) : (-1, default);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return (-2, default);
        }
    }

    public void Dispose()
    {
        _hangUp?.Dispose();
        _timer.Dispose();
    }
}
