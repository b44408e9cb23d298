using System.Globalization;
using System.Text;

namespace RaftPS.Bench;

/// <summary>The report's "Against the goals" table: issue 26's goals, then fail-over, the saturating
/// run, idle memory and the PowerShell pipeline; each with what this session measured.</summary>
static partial class Report
{
    static void WriteGoals(StringBuilder report, string baseline, List<string> others, Session s)
    {
        var conc = s.Concurrency;
        var b = conc.Where(r => r.Label == baseline).ToList();
        var md = new StringBuilder();
        static string Mark(bool ok) => ok ? "yes" : "**no**";
        List<Run> Cell(string label, string workload, int c) =>
            conc.Where(r => r.Label == label && r.Workload == workload && r.Concurrency == c).ToList();

        // The client's CPU per request and the throughput from C=64 to C=1,024 against RaftPS.
        foreach (var w in WorkloadOrder)
        {
            var range = b.Where(r => r.Workload == w && r.Concurrency >= 64).Select(r => r.Concurrency).Distinct().Order().ToList();
            if (range.Count < 2 || range[0] != 64) continue;
            var cpu = range.Select(c => (C: c, Us: Cell(baseline, w, c).Where(r => r.ClientUsPerOp is not null).Select(r => r.ClientUsPerOp!.Value).DefaultIfEmpty(double.NaN).Average())).ToList();
            double at64 = cpu[0].Us, worst = cpu.Max(x => x.Us);
            md.AppendLine($"| {w}: client CPU per request within 15% from C=64 to C={range[^1]:N0} | {string.Join(", ", cpu.Select(x => $"C={x.C}: {x.Us:0.0}"))} µs (highest {Pct(worst / at64 - 1)}) | {Mark(worst <= at64 * 1.15)} |");
            // Throughput may not fall by more than the noise: the rounds' half-spread at both ends.
            var lo = Cell(baseline, w, 64); var hi = Cell(baseline, w, range[^1]);
            double Spread(List<Run> rs) => rs.Count < 2 ? 0 : (rs.Max(r => r.OpsPerSec) - rs.Min(r => r.OpsPerSec)) / 2;
            double l = lo.Average(r => r.OpsPerSec), h = hi.Average(r => r.OpsPerSec), noise = Spread(lo) + Spread(hi);
            md.AppendLine($"| {w}: throughput from C=64 to C={range[^1]:N0} falls no more than the noise | {l:N0} → {h:N0} ops/s ({Pct(h / l - 1)}; noise ±{noise:N0}{(lo.Count < 2 ? ", one round" : "")}) | {Mark(h >= l - noise)} |");
        }

        // Ahead of the best of etcd and DotNext: 1.2x at C >= 16, 1.3x at C=1.
        var rivals = others.Where(o => (o.StartsWith("etcd", StringComparison.Ordinal) || o == "dotnext") && conc.Any(r => r.Label == o)).ToList();
        if (rivals.Count > 0 && b.Count > 0)
        {
            var rows = Cells(b).Select(k => (k.Workload, k.Concurrency, B: MeanOps(Cell(baseline, k.Workload, k.Concurrency)),
                    Best: rivals.Select(o => (Label: o, Ops: MeanOps(Cell(o, k.Workload, k.Concurrency)))).Where(x => x.Ops is not null).MaxBy(x => x.Ops)))
                .Where(x => x.B is not null && x.Best.Ops is not null).ToList();
            foreach (var (name, pick, factor) in new (string, Func<int, bool>, double)[] { ("C=1", c => c == 1, 1.3), ("C ≥ 16", c => c >= 16, 1.2) })
            {
                var sel = rows.Where(x => pick(x.Concurrency)).ToList();
                if (sel.Count == 0) continue;
                var behind = sel.Where(x => x.B < x.Best.Ops * factor).ToList();
                md.AppendLine($"| every row at {name} at least {factor:0.0}x the best of {string.Join(", ", rivals)} | {sel.Count - behind.Count} of {sel.Count} rows" +
                    (behind.Count > 0 ? $"; short: {string.Join(", ", behind.Select(x => $"{x.Workload} C={x.Concurrency} {x.B / x.Best.Ops:0.00}x {x.Best.Label}"))}" : "") +
                    $" | {Mark(behind.Count == 0)} |");
            }
        }

        // Server CPU per request at C=64 (every node summed).
        foreach (var (w, limit) in new[] { ("get", 20.0), ("put", 30.0) })
        {
            var us = Cell(baseline, w, 64).Where(r => r.ServerUsPerOp is not null).Select(r => r.ServerUsPerOp!.Value).ToList();
            if (us.Count > 0)
                md.AppendLine($"| server CPU per {(w == "get" ? "linearizable get" : "put")} at C=64 at most {limit:0} µs (3 nodes summed) | {us.Average():0.0} µs | {Mark(us.Average() <= limit)} |");
        }

        // 5 nodes keep 80% of the 3-node put throughput at C=256.
        var big = s.Runs.Where(r => r.Dimension == "nodes" && r.Nodes > 3 && r.Label == baseline && r.Workload == "put" && r.Concurrency == 256).ToList();
        if (big.Count > 0)
        {
            var three = Matching(s, baseline, "put", 256, 3, Keys.ValueSize, big[0].Connections).ToList();
            if (MeanOps(three) is double t && MeanOps(big) is double f)
                md.AppendLine($"| a {big[0].Nodes}-node cluster keeps at least 80% of the 3-node put throughput at C=256 | {f:N0} vs {t:N0} ops/s = {f / t * 100:0}% | {Mark(f >= 0.8 * t)} |");
        }

        // Memory with many keys: at most 2x the live data per node.
        if (KeysRatios(s).TryGetValue(baseline, out var ratios) && ratios.Count > 0)
        {
            long keys = s.Preloads.Where(p => (string?)p["label"] == baseline).Max(p => (long)p["keys"]!);
            md.AppendLine($"| {keys:N0} keys of 256 B cost at most 2x the live data per node | {string.Join(", ", ratios.Select(x => x.ToString("0.00", CultureInfo.InvariantCulture)))}x | {Mark(ratios.Max() <= 2)} |");
        }

        var fo = s.Failovers.Where(f => (string?)f["label"] == baseline).Select(f => (double?)f["ms"]).ToList();
        if (fo.Count > 0)
        {
            var ok = fo.Where(x => x is not null).Select(x => x!.Value).ToList();
            double? median = ok.Count == 0 ? null : Stats.Median(ok);
            md.AppendLine($"| fail-over median under 0.4 s (default timers) | {(median is double m ? $"{m:0} ms" : "none recovered")} ({ok.Count} of {fo.Count} rounds) | {Mark(median is double mm && mm < 400 && ok.Count == fo.Count)} |");
        }
        var soak = s.Soaks.Where(r => r.Label == baseline).ToList();
        if (soak.Count > 0)
            md.AppendLine($"| no leader change during a {soak.Max(r => r.Duration):0} s saturating run | {(soak.All(r => r.LeaderStable) ? "no change" : "changed")}, {soak.Sum(r => r.Errors)} failed requests | {Mark(soak.All(r => r.LeaderStable))} |");
        var idle = s.Rss.Where(r => (string?)r["label"] == baseline && (string?)r["phase"] == "idle").Select(r => (long?)r["rss_kib"]).Where(v => v is not null).Select(v => v!.Value).ToList();
        if (idle.Count > 0)
            md.AppendLine($"| idle RSS per node under 60 MiB | {string.Join(", ", idle.Select(k => $"{k / 1024.0:0.0}"))} MiB | {Mark(idle.Max() < 60 * 1024)} |");
        var pipe = s.Pipelines.Select(p => (double?)p["ops_per_s"]).Where(v => v is not null).Select(v => v!.Value).ToList();
        if (pipe.Count > 0)
            md.AppendLine($"| PowerShell pipeline at least 5,000 writes/s | {string.Join(", ", pipe.Select(v => v.ToString("N0", CultureInfo.InvariantCulture)))} writes/s | {Mark(pipe.Max() >= 5000)} |");
        if (md.Length == 0) return;
        report.AppendLine("## Against the goals");
        report.AppendLine();
        report.AppendLine("| goal | measured | met |");
        report.AppendLine("|---|---|:-:|");
        report.Append(md);
        report.AppendLine();
    }

    /// <summary>A relative change as a signed whole percentage: +18%, -3%.</summary>
    static string Pct(double change)
    {
        double p = Math.Round(change * 100);
        return (p < 0 ? "-" : "+") + Math.Abs(p).ToString("0", CultureInfo.InvariantCulture) + "%";
    }
}
