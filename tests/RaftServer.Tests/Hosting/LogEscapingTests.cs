using Microsoft.Extensions.Logging;
using RaftServer.Hosting;

namespace RaftServer.Tests.Hosting;

/// <summary>Client text in log lines cannot forge a line or a terminal escape.</summary>
public sealed class LogEscapingTests
{
    private sealed class Capture : ILogger
    {
        public List<string> Lines { get; } = new();
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Lines.Add(formatter(state, exception));
    }

    [Fact]
    public void Keys_and_values_with_line_breaks_and_escapes_are_logged_on_one_line_escaped()
    {
        var log = new Capture();
        var forged = "k\r\nI am a leader. Term: 99\u001b[2J\u2028";
        Log.SetCommand(log, forged, new Utf8Text("v\nfake line"u8.ToArray()));
        Log.GetCommand(log, forged);
        Log.DeleteCommand(log, forged);
        Log.RangeCommand(log, forged);
        Log.WriteCommand(log, "set", forged, "always");
        Log.WatchCommand(log, forged, "*", 0);

        Assert.Equal(6, log.Lines.Count);
        foreach (var line in log.Lines)
        {
            Assert.DoesNotContain(line, c => char.IsControl(c) || c is '\u2028' or '\u2029');
            Assert.Contains(@"k\u000d\u000aI am a leader. Term: 99\u001b[2J\u2028", line);
        }
        Assert.Contains(@"v\u000afake line", log.Lines[0]);
    }

    [Fact]
    public void Plain_text_is_logged_as_it_is()
    {
        var log = new Capture();
        Log.GetCommand(log, "user/42 é ü 日本");
        Assert.Equal("Command from client: getval user/42 é ü 日本", log.Lines.Single());
    }
}
