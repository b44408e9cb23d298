using System.Globalization;
using System.Text;

namespace RaftPS.Bench;

static partial class Report
{
    // ---------------------------------------------------------------------------------------
    // The chart: throughput (top row) and p99 latency (bottom row, log scale) against
    // concurrency, one column per workload, one line per target. Plain SVG, no dependencies.
    // ---------------------------------------------------------------------------------------
    static readonly string[] Palette = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

    static void WriteSvg(string path, List<Run> runs, List<string> labels, string subtitle)
    {
        const int panelW = 340, panelH = 230, left = 70, top = 86, gapX = 60, gapY = 70;
        int width = left + 3 * panelW + 2 * gapX + 30;
        int height = top + 2 * panelH + gapY + 70;
        var svg = new StringBuilder();
        svg.AppendLine($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">");
        svg.AppendLine($"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>");
        svg.AppendLine($"<text x=\"{width / 2}\" y=\"24\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">Throughput and p99 latency against concurrency ({Esc(subtitle)})</text>");
        // Legend
        for (int i = 0; i < labels.Count; i++)
        {
            int x = left + i * 220;
            svg.AppendLine($"<line x1=\"{x}\" y1=\"44\" x2=\"{x + 24}\" y2=\"44\" stroke=\"{Palette[i % Palette.Length]}\" stroke-width=\"3\"/>");
            svg.AppendLine($"<text x=\"{x + 30}\" y=\"48\">{Esc(labels[i])}</text>");
        }
        var concurrencies = runs.Select(r => r.Concurrency).Distinct().OrderBy(c => c).ToList();
        for (int col = 0; col < 3; col++)
        {
            string workload = WorkloadOrder[col];
            var wr = runs.Where(r => r.Workload == workload).ToList();
            for (int row = 0; row < 2; row++)
            {
                int px = left + col * (panelW + gapX), py = top + row * (panelH + gapY);
                bool latency = row == 1;
                svg.AppendLine($"<rect x=\"{px}\" y=\"{py}\" width=\"{panelW}\" height=\"{panelH}\" fill=\"#fafafa\" stroke=\"#999\"/>");
                svg.AppendLine($"<text x=\"{px + panelW / 2}\" y=\"{py - 8}\" text-anchor=\"middle\" font-weight=\"bold\">{WorkloadTitle[col]}: {(latency ? "p99 latency (ms, log)" : "throughput (ops/s)")}</text>");
                if (wr.Count == 0)
                {
                    svg.AppendLine($"<text x=\"{px + panelW / 2}\" y=\"{py + panelH / 2}\" text-anchor=\"middle\" fill=\"#999\">not measured</text>");
                    continue;
                }
                // x: concurrency values equally spaced (they are powers of two or so)
                double X(int c) => px + 20 + (panelW - 40) * (concurrencies.Count == 1 ? 0.5 : concurrencies.IndexOf(c) / (double)(concurrencies.Count - 1));
                foreach (int c in concurrencies)
                    svg.AppendLine($"<text x=\"{X(c):0.0}\" y=\"{py + panelH + 16}\" text-anchor=\"middle\">{c}</text>");
                svg.AppendLine($"<text x=\"{px + panelW / 2}\" y=\"{py + panelH + 32}\" text-anchor=\"middle\" fill=\"#555\">concurrency C</text>");

                Func<double, double> Y;
                if (!latency)
                {
                    double step = NiceStep(wr.Max(r => r.OpsPerSec) * 1.05 / 4);
                    int ticks = (int)Math.Ceiling(wr.Max(r => r.OpsPerSec) * 1.05 / step);
                    double max = step * ticks;
                    Y = v => py + panelH - panelH * v / max;
                    for (int t = 0; t <= ticks; t++)
                    {
                        double v = step * t;
                        svg.AppendLine($"<line x1=\"{px}\" y1=\"{Y(v):0.0}\" x2=\"{px + panelW}\" y2=\"{Y(v):0.0}\" stroke=\"#e0e0e0\"/>");
                        svg.AppendLine($"<text x=\"{px - 6}\" y=\"{Y(v) + 4:0.0}\" text-anchor=\"end\">{(v >= 1000 ? $"{v / 1000:0.#}k" : $"{v:0}")}</text>");
                    }
                }
                else
                {
                    double lo = Math.Floor(Math.Log10(Math.Max(0.01, wr.Min(r => r.P99)))), hi = Math.Ceiling(Math.Log10(Math.Max(0.02, wr.Max(r => r.P99))));
                    if (hi <= lo) hi = lo + 1;
                    Y = v => py + panelH - panelH * (Math.Log10(Math.Max(v, 1e-3)) - lo) / (hi - lo);
                    for (double e = lo; e <= hi; e++)
                    {
                        double v = Math.Pow(10, e);
                        svg.AppendLine($"<line x1=\"{px}\" y1=\"{Y(v):0.0}\" x2=\"{px + panelW}\" y2=\"{Y(v):0.0}\" stroke=\"#e0e0e0\"/>");
                        svg.AppendLine($"<text x=\"{px - 6}\" y=\"{Y(v) + 4:0.0}\" text-anchor=\"end\">{v.ToString("0.###", CultureInfo.InvariantCulture)}</text>");
                        if (e < hi)
                            foreach (double m in new[] { 2.0, 5.0 })
                            {
                                svg.AppendLine($"<line x1=\"{px}\" y1=\"{Y(v * m):0.0}\" x2=\"{px + panelW}\" y2=\"{Y(v * m):0.0}\" stroke=\"#f0f0f0\"/>");
                                svg.AppendLine($"<text x=\"{px - 6}\" y=\"{Y(v * m) + 4:0.0}\" text-anchor=\"end\" fill=\"#888\" font-size=\"10\">{(v * m).ToString("0.###", CultureInfo.InvariantCulture)}</text>");
                            }
                    }
                }
                for (int li = 0; li < labels.Count; li++)
                {
                    var points = new List<(double X, double Y)>();
                    foreach (int c in concurrencies)
                    {
                        var rs = wr.Where(r => r.Label == labels[li] && r.Concurrency == c).ToList();
                        if (rs.Count == 0) continue;
                        double v = latency ? rs.Average(r => r.P99) : rs.Average(r => r.OpsPerSec);
                        points.Add((X(c), Y(v)));
                    }
                    if (points.Count == 0) continue;
                    string color = Palette[li % Palette.Length];
                    svg.AppendLine($"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2.5\" points=\"{string.Join(' ', points.Select(p => $"{p.X:0.0},{p.Y:0.0}"))}\"/>");
                    foreach (var p in points) svg.AppendLine($"<circle cx=\"{p.X:0.0}\" cy=\"{p.Y:0.0}\" r=\"3.5\" fill=\"{color}\"/>");
                }
            }
        }
        svg.AppendLine("</svg>");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllText(path, svg.ToString());
    }

    static double NiceStep(double rough)
    {
        if (rough <= 0) return 1;
        double mag = Math.Pow(10, Math.Floor(Math.Log10(rough)));
        foreach (double m in new[] { 1, 2, 2.5, 5, 10 })
            if (m * mag >= rough) return m * mag;
        return 10 * mag;
    }

    static string Esc(string s) => s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;");
}
