using Microsoft.Extensions.Logging;

namespace RaftServer.Hosting;

/// <summary>The log lines of conditional writes, watches and leases.</summary>
internal static partial class Log
{
    [LoggerMessage(Level = LogLevel.Information, Message = "Command from client: write {Op} {Key} if {Condition}")]
    public static partial void WriteCommand(ILogger logger, string op, string key, string condition);

    [LoggerMessage(Level = LogLevel.Information, Message = "Command from client: watch {Key}{Prefix} from {Revision}")]
    public static partial void WatchCommand(ILogger logger, string key, string prefix, long revision);

    [LoggerMessage(Level = LogLevel.Information, Message = "Command from client: lease grant {Seconds} s")]
    public static partial void LeaseGrantCommand(ILogger logger, long seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "Command from client: lease revoke {Id}")]
    public static partial void LeaseRevokeCommand(ILogger logger, long id);

    [LoggerMessage(Level = LogLevel.Information, Message = "Lease {Id} expired; revoking it")]
    public static partial void LeaseExpired(ILogger logger, long id);

    // Debug: a lock holder sends one every third of its time to live.
    [LoggerMessage(Level = LogLevel.Debug, Message = "Command from client: lease keepalive {Id}")]
    public static partial void LeaseKeepAliveCommand(ILogger logger, long id);
}
