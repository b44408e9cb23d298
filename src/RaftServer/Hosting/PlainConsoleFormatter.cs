using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;

namespace RaftServer.Hosting;

/// <summary>
/// Prints a log line as the original server did: the message alone ("I am a leader. Term: 1").
/// Warnings and errors carry a "warning: " / "error: " prefix.
/// </summary>
public sealed class PlainConsoleFormatter() : ConsoleFormatter(Name)
{
    public new const string Name = "raftps";

    public override void Write<TState>(in LogEntry<TState> logEntry, Microsoft.Extensions.Logging.IExternalScopeProvider? scopeProvider, TextWriter textWriter)
    {
        var message = logEntry.Formatter(logEntry.State, logEntry.Exception);
        if (message is null && logEntry.Exception is null) return;
        var prefix = logEntry.LogLevel switch
        {
            LogLevel.Warning => "warning: ",
            LogLevel.Error => "error: ",
            LogLevel.Critical => "fatal: ",
            _ => "",
        };
        textWriter.Write(prefix);
        textWriter.Write(message);
        if (logEntry.Exception is { } e && logEntry.LogLevel >= LogLevel.Error)
        {
            textWriter.Write(Environment.NewLine);
            textWriter.Write(e.ToString());
        }
        textWriter.Write(Environment.NewLine);
    }
}
