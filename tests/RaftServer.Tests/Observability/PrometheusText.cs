using System.Globalization;
using System.Text;

namespace RaftServer.Tests.Observability;

public sealed record PrometheusSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value)
{
    public string Label(string name) => Labels.TryGetValue(name, out var v) ? v : "";
}

public sealed class PrometheusFamily(string name)
{
    public string Name { get; } = name;
    public string Type { get; set; } = "untyped";
    public string Help { get; set; } = "";
    public List<PrometheusSample> Samples { get; } = new();
}

/// <summary>
/// A parser of the Prometheus text exposition format 0.0.4 (prometheus.io, "Exposition formats"):
/// <c># HELP</c> and <c># TYPE</c> lines, samples <c>name{label="value",...} value [timestamp]</c>
/// with the escapes <c>\\ \" \n</c> in label values and <c>NaN +Inf -Inf</c> values. Strict: a
/// line it cannot read, a sample of an undeclared or mismatched family, a TYPE after that family's
/// samples, or a histogram whose buckets are not cumulative or lack <c>+Inf</c>/<c>_count</c>
/// throws <see cref="FormatException"/> naming the line.
/// </summary>
public static class PrometheusText
{
    private static readonly HashSet<string> Types = ["counter", "gauge", "histogram", "summary", "untyped"];

    public static Dictionary<string, PrometheusFamily> Parse(string text)
    {
        var families = new Dictionary<string, PrometheusFamily>(StringComparer.Ordinal);
        var lineNo = 0;
        foreach (var raw in text.Split('\n'))
        {
            lineNo++;
            var line = raw.TrimEnd('\r');
            if (line.Trim().Length == 0) continue;
            try
            {
                if (line.StartsWith('#')) ParseComment(line, families);
                else ParseSample(line, families);
            }
            catch (FormatException e)
            {
                throw new FormatException($"line {lineNo}: {e.Message}: {line}");
            }
        }
        foreach (var f in families.Values.Where(f => f.Type == "histogram")) CheckHistogram(f);
        return families;
    }

    private static void ParseComment(string line, Dictionary<string, PrometheusFamily> families)
    {
        var parts = line[1..].TrimStart().Split(' ', 3);
        if (parts.Length < 2 || parts[0] is not ("HELP" or "TYPE")) return; // any other comment
        var name = parts[1];
        if (!IsMetricName(name)) throw new FormatException($"'{name}' is not a metric name");
        if (!families.TryGetValue(name, out var family)) families[name] = family = new PrometheusFamily(name);
        if (parts[0] == "HELP")
        {
            family.Help = parts.Length > 2 ? Unescape(parts[2], help: true) : "";
            return;
        }
        var type = parts.Length > 2 ? parts[2].Trim() : "";
        if (!Types.Contains(type)) throw new FormatException($"unknown type '{type}'");
        if (family.Samples.Count > 0) throw new FormatException($"TYPE of {name} after its samples");
        family.Type = type;
    }

    private static void ParseSample(string line, Dictionary<string, PrometheusFamily> families)
    {
        var i = 0;
        while (i < line.Length && IsNameChar(line[i], i == 0)) i++;
        var name = line[..i];
        if (name.Length == 0) throw new FormatException("a sample must start with a metric name");
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (i < line.Length && line[i] == '{')
        {
            i++;
            while (true)
            {
                SkipSpaces(line, ref i);
                if (i < line.Length && line[i] == '}') { i++; break; }
                var start = i;
                while (i < line.Length && IsNameChar(line[i], i == start) && line[i] != ':') i++;
                var label = line[start..i];
                if (label.Length == 0) throw new FormatException("a label name is missing");
                SkipSpaces(line, ref i);
                Expect(line, ref i, '=');
                SkipSpaces(line, ref i);
                Expect(line, ref i, '"');
                var value = new StringBuilder();
                while (true)
                {
                    if (i >= line.Length) throw new FormatException("an unterminated label value");
                    var c = line[i++];
                    if (c == '"') break;
                    if (c == '\\')
                    {
                        if (i >= line.Length) throw new FormatException("an escape at the end of the line");
                        value.Append(line[i++] switch
                        {
                            '\\' => '\\',
                            '"' => '"',
                            'n' => '\n',
                            var other => throw new FormatException($"an unknown escape '\\{other}'"),
                        });
                    }
                    else value.Append(c);
                }
                if (!labels.TryAdd(label, value.ToString())) throw new FormatException($"label '{label}' twice");
                SkipSpaces(line, ref i);
                if (i < line.Length && line[i] == ',') { i++; continue; }
                Expect(line, ref i, '}');
                break;
            }
        }
        var rest = line[i..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (rest.Length is < 1 or > 2) throw new FormatException("expected a value and an optional timestamp");
        var v = ParseValue(rest[0]);
        if (rest.Length == 2 && !long.TryParse(rest[1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _))
            throw new FormatException($"'{rest[1]}' is not a timestamp");

        var family = FamilyOf(name, families) ?? throw new FormatException($"sample {name} has no TYPE or HELP of its family");
        family.Samples.Add(new PrometheusSample(name, labels, v));
    }

    /// <summary>The family a sample belongs to: its own name, or for a histogram/summary the name without its suffix.</summary>
    private static PrometheusFamily? FamilyOf(string name, Dictionary<string, PrometheusFamily> families)
    {
        foreach (var suffix in new[] { "_bucket", "_sum", "_count" })
            if (name.EndsWith(suffix, StringComparison.Ordinal) && families.TryGetValue(name[..^suffix.Length], out var f)
                && (f.Type == "histogram" || (f.Type == "summary" && suffix != "_bucket")))
                return f;
        if (families.TryGetValue(name, out var own))
        {
            if (own.Type is "histogram") throw new FormatException($"histogram sample {name} without _bucket, _sum or _count");
            return own;
        }
        return null;
    }

    private static void CheckHistogram(PrometheusFamily f)
    {
        foreach (var series in f.Samples.GroupBy(s => string.Join(",", s.Labels.Where(l => l.Key != "le").OrderBy(l => l.Key).Select(l => $"{l.Key}={l.Value}"))))
        {
            var buckets = series.Where(s => s.Name == f.Name + "_bucket").ToList();
            var count = series.SingleOrDefault(s => s.Name == f.Name + "_count")
                ?? throw new FormatException($"histogram {f.Name}{{{series.Key}}} has no _count");
            if (buckets.Count == 0 || buckets[^1].Label("le") != "+Inf")
                throw new FormatException($"histogram {f.Name}{{{series.Key}}} does not end with the +Inf bucket");
            for (var i = 1; i < buckets.Count; i++)
            {
                if (ParseValue(buckets[i].Label("le")) <= ParseValue(buckets[i - 1].Label("le")))
                    throw new FormatException($"histogram {f.Name}: bucket bounds not increasing");
                if (buckets[i].Value < buckets[i - 1].Value)
                    throw new FormatException($"histogram {f.Name}: buckets not cumulative");
            }
            if (buckets[^1].Value != count.Value) throw new FormatException($"histogram {f.Name}: +Inf bucket {buckets[^1].Value} != _count {count.Value}");
        }
    }

    private static double ParseValue(string text) => text switch
    {
        "NaN" => double.NaN,
        "+Inf" or "Inf" => double.PositiveInfinity,
        "-Inf" => double.NegativeInfinity,
        _ => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : throw new FormatException($"'{text}' is not a number"),
    };

    private static string Unescape(string text, bool help)
    {
        var sb = new StringBuilder();
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] != '\\' || i + 1 >= text.Length) { sb.Append(text[i]); continue; }
            var c = text[++i];
            sb.Append(c switch { '\\' => '\\', 'n' => '\n', '"' when !help => '"', _ => throw new FormatException($"an unknown escape '\\{c}'") });
        }
        return sb.ToString();
    }

    private static bool IsMetricName(string name) => name.Length > 0 && name.Select((c, i) => IsNameChar(c, i == 0)).All(ok => ok);

    private static bool IsNameChar(char c, bool first) =>
        c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or '_' or ':' || (!first && c is >= '0' and <= '9');

    private static void SkipSpaces(string line, ref int i)
    {
        while (i < line.Length && line[i] == ' ') i++;
    }

    private static void Expect(string line, ref int i, char c)
    {
        if (i >= line.Length || line[i] != c) throw new FormatException($"expected '{c}' at column {i + 1}");
        i++;
    }
}
