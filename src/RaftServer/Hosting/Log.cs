using Microsoft.Extensions.Logging;

namespace RaftServer.Hosting;

/// <summary>
/// Text that is decoded as UTF-8 only if a log line is actually written; long values are cut to
/// their first <see cref="MaxShown"/> bytes and their length, so a 1 MiB value stays one short line.
/// </summary>
/// <summary>A value shown in a log line: at most <see cref="MaxShown"/> bytes, control characters escaped.</summary>
public readonly struct Utf8Text(ReadOnlyMemory<byte> bytes)
{
    public const int MaxShown = 64;

    public override string ToString() => bytes.Length <= MaxShown
        ? Printable.Escape(System.Text.Encoding.UTF8.GetString(bytes.Span))
        : $"{Printable.Escape(System.Text.Encoding.UTF8.GetString(bytes.Span[..MaxShown]))}... ({bytes.Length} bytes)";
}

/// <summary>
/// Text from a client (a key, a prefix) shown in a log line. Control characters (CR, LF, ESC, ...)
/// and Unicode line and paragraph separators are escaped as \uXXXX, so a key cannot forge a log
/// line or a terminal escape; the work is done only when the line is written.
/// </summary>
public readonly struct Printable(string? text)
{
    public static implicit operator Printable(string? text) => new(text);

    public override string ToString() => Escape(text ?? "");

    public static string Escape(string text)
    {
        var i = 0;
        while (i < text.Length && !NeedsEscape(text[i])) i++;
        if (i == text.Length) return text;
        var sb = new System.Text.StringBuilder(text.Length + 16);
        sb.Append(text, 0, i);
        for (; i < text.Length; i++)
        {
            var c = text[i];
            if (NeedsEscape(c)) sb.Append("\\u").Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture));
            else sb.Append(c);
        }
        return sb.ToString();
    }

    private static bool NeedsEscape(char c) => char.IsControl(c) || c is '\u2028' or '\u2029';
}

/// <summary>
/// Every log line of the node, with the original Python server's wording. Source-generated:
/// a line whose level is off costs one IsEnabled check (no formatting, no allocation).
/// Node events use the category "RaftServer"; per-request lines use "RaftServer.Requests" so
/// they can be switched off alone (--quiet).
/// </summary>
internal static partial class Log
{
    public const string NodeCategory = "RaftServer";
    public const string RequestCategory = "RaftServer.Requests";

    [LoggerMessage(Level = LogLevel.Information, Message = "The server starts at {Address}")]
    public static partial void ServerStarts(ILogger logger, string address);

    [LoggerMessage(Level = LogLevel.Information, Message = "I am a follower. Term: {Term}")]
    public static partial void Follower(ILogger logger, long term);

    [LoggerMessage(Level = LogLevel.Information, Message = "The leader is dead")]
    public static partial void LeaderDead(ILogger logger);

    [LoggerMessage(Level = LogLevel.Debug, Message = "I am a pre-candidate. Term: {Term}")]
    public static partial void PreCandidate(ILogger logger, long term);

    [LoggerMessage(Level = LogLevel.Information, Message = "I am a candidate. Term: {Term}")]
    public static partial void Candidate(ILogger logger, long term);

    [LoggerMessage(Level = LogLevel.Information, Message = "Voted for node {Node}")]
    public static partial void VotedFor(ILogger logger, int node);

    [LoggerMessage(Level = LogLevel.Information, Message = "Votes received")]
    public static partial void VotesReceived(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "I am a leader. Term: {Term}")]
    public static partial void Leader(ILogger logger, long term);

    [LoggerMessage(Level = LogLevel.Debug, Message = "The leader is node {Leader}. Term: {Term}")]
    public static partial void LeaderIs(ILogger logger, int leader, long term);

    [LoggerMessage(Level = LogLevel.Information, Message = "Sleeping for {Seconds} seconds")]
    public static partial void Sleeping(ILogger logger, double seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "Woke up after {Seconds} seconds; resuming from the data directory")]
    public static partial void Resumed(ILogger logger, double seconds);

    // Debug: at the default policy a busy node snapshots every few seconds.
    [LoggerMessage(Level = LogLevel.Debug, Message = "Snapshot at index {Index} (term {Term}): {Bytes} bytes written in {Ms} ms; {Segments} log segment files removed")]
    public static partial void SnapshotTaken(ILogger logger, long index, long term, long bytes, long ms, int segments);

    [LoggerMessage(Level = LogLevel.Information, Message = "Installed the leader's snapshot at index {Index} (term {Term}): {Bytes} bytes, {Keys} keys")]
    public static partial void SnapshotInstalled(ILogger logger, long index, long term, long bytes, int keys);

    [LoggerMessage(Level = LogLevel.Information, Message = "Members: {Members}")]
    public static partial void Members(ILogger logger, string members);

    [LoggerMessage(Level = LogLevel.Information, Message = "This node is a learner: it receives the log and does not vote")]
    public static partial void IsLearner(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "This node is not a member of the cluster: it will not stand for election")]
    public static partial void NotAMember(ILogger logger);

    [LoggerMessage(Level = LogLevel.Debug, Message = "This configuration does not list this node yet: it is catching up from before it was added")]
    public static partial void NotYetAMember(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "Command from client: getleader")]
    public static partial void GetLeaderCommand(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Id} {Address}")]
    public static partial void LeaderAnswer(ILogger logger, int id, string address);

    [LoggerMessage(Level = LogLevel.Information, Message = "Command from client: setval {Key} {Value}")]
    public static partial void SetCommand(ILogger logger, Printable key, Utf8Text value);

    [LoggerMessage(Level = LogLevel.Information, Message = "Command from client: setval {Count} keys")]
    public static partial void SetManyCommand(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Command from client: getval {Key}")]
    public static partial void GetCommand(ILogger logger, Printable key);

    [LoggerMessage(Level = LogLevel.Information, Message = "Command from client: delete {Key}")]
    public static partial void DeleteCommand(ILogger logger, Printable key);

    [LoggerMessage(Level = LogLevel.Information, Message = "Command from client: range {Prefix}")]
    public static partial void RangeCommand(ILogger logger, Printable prefix);

    [LoggerMessage(Level = LogLevel.Information, Message = "Command from client: suspend {Seconds}")]
    public static partial void SuspendCommand(ILogger logger, double seconds);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Command from client: status")]
    public static partial void StatusCommand(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "Command from client: {Change} node {Id}")]
    public static partial void MemberCommand(ILogger logger, string change, int id);

    [LoggerMessage(Level = LogLevel.Information, Message = "Command from client: transfer leadership to {Target}")]
    public static partial void TransferCommand(ILogger logger, string target);

    [LoggerMessage(Level = LogLevel.Information, Message = "Command from client: resume")]
    public static partial void ResumeCommand(ILogger logger);
}
