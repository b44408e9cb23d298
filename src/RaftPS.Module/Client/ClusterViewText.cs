using System.Globalization;
using System.Text;

namespace RaftPS.Client;

/// <summary>
/// The text of one frame of Watch-RaftCluster: a title line and a table, one row per member.
/// With <c>color</c>, members that are unreachable or suspended are red (ANSI SGR 31) and each
/// line ends with "erase to end of line", so a frame drawn over the previous one leaves nothing of it.
/// </summary>
internal static class ClusterViewText
{
    private const string Red = "\u001b[31m", Bold = "\u001b[1m", Reset = "\u001b[0m", EraseLine = "\u001b[K";

    private static readonly string[] Headers = ["ID", "ENDPOINT", "ROLE", "TERM", "COMMIT", "APPLIED", "LAG", "HEARTBEAT", "WRITES/S", "READS/S", "FSYNC P99", "STATUS"];
    private static readonly bool[] RightAligned = [true, false, false, true, true, true, true, true, true, true, true, false];

    public static string Render(IReadOnlyList<RaftNodeStatus> rows, string title, bool color)
    {
        var cells = rows.Select(Cells).ToList();
        var widths = Headers.Select((h, i) => Math.Max(h.Length, cells.Count == 0 ? 0 : cells.Max(c => c[i].Length))).ToArray();
        var sb = new StringBuilder();
        Line(sb, color ? Bold + title + Reset : title, color);
        Line(sb, "", color);
        Line(sb, Join(Headers, widths), color);
        for (var r = 0; r < rows.Count; r++)
        {
            var text = Join(cells[r], widths);
            Line(sb, color && rows[r].Health != RaftNodeHealth.Ok ? Red + text + Reset : text, color);
        }
        return sb.ToString();
    }

    private static void Line(StringBuilder sb, string text, bool color)
    {
        sb.Append(text);
        if (color) sb.Append(EraseLine);
        sb.Append('\n');
    }

    private static string Join(IReadOnlyList<string> cells, int[] widths)
    {
        var sb = new StringBuilder();
        for (var i = 0; i < cells.Count; i++)
        {
            if (i > 0) sb.Append("  ");
            sb.Append(RightAligned[i] ? cells[i].PadLeft(widths[i]) : cells[i].PadRight(widths[i]));
        }
        return sb.ToString().TrimEnd();
    }

    private static string[] Cells(RaftNodeStatus s) =>
    [
        s.Id?.ToString(CultureInfo.InvariantCulture) ?? "?",
        s.Endpoint,
        s.Role?.ToString().ToLowerInvariant() ?? "-",
        Number(s.Term),
        Number(s.CommitIndex),
        Number(s.AppliedIndex),
        Number(s.Lag),
        s.SinceLeaderContact is { } since ? since.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture) + " ms" : "-",
        Rate(s.WritesPerSecond),
        Rate(s.ReadsPerSecond),
        s.FsyncP99 is { } p99 ? Duration(p99) : "-",
        s.Health switch
        {
            RaftNodeHealth.Ok => "ok",
            RaftNodeHealth.Suspended => "suspended",
            _ => "unreachable" + (s.Error is { } e && e != "unreachable" ? $" ({e})" : ""),
        },
    ];

    private static string Number(long? n) => n?.ToString(CultureInfo.InvariantCulture) ?? "-";

    private static string Rate(double? r) => r?.ToString("0.0", CultureInfo.InvariantCulture) ?? "-";

    internal static string Duration(TimeSpan t) => t.TotalMilliseconds switch
    {
        < 1 => (t.TotalMilliseconds * 1000).ToString("0", CultureInfo.InvariantCulture) + " µs",
        < 10 => t.TotalMilliseconds.ToString("0.00", CultureInfo.InvariantCulture) + " ms",
        < 10_000 => t.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture) + " ms",
        _ => t.TotalSeconds.ToString("0", CultureInfo.InvariantCulture) + " s",
    };
}
