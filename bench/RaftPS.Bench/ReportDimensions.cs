using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace RaftPS.Bench;

/// <summary>The report's tables for the dimensions beside concurrency: connections per node, cluster
/// size, value size and 1,000,000 keys. Each takes its reference cells (3 nodes, 256 B, the usual
/// connections) from whichever dimension measured them, matched by their settings.</summary>
static partial class Report
{
    static IEnumerable<Run> Matching(Session s, string label, string workload, int c, int nodes, int valueBytes, int connections) =>
        s.Runs.Where(r => r.Label == label && r.Workload == workload && r.Concurrency == c && r.Nodes == nodes
            && r.ValueBytes == valueBytes && r.Connections == connections);

    static List<string> Systems(string baseline, IEnumerable<Run> runs)
    {
        var labels = Distinct(runs.Select(r => r.Label));
        labels.Sort((x, y) => (x == baseline ? 0 : 1).CompareTo(y == baseline ? 0 : 1));
        return labels;
    }

    static void WriteConnections(StringBuilder md, string baseline, Session s)
    {
        var dim = s.Runs.Where(r => r.Dimension == "connections").ToList();
        if (dim.Count == 0) return;
        var counts = Distinct(s.Runs.Where(r => r.Nodes == 3 && r.ValueBytes == Keys.ValueSize && dim.Any(d => d.Workload == r.Workload && d.Concurrency == r.Concurrency))
            .Select(r => r.Connections)).Order().ToList();
        md.AppendLine("## Connections per node");
        md.AppendLine();
        md.AppendLine("The same closed loop (3 nodes, 256 B values) over 1 or more HTTP/2 connections to the leader: one GrpcChannel, with its own");
        md.AppendLine("SocketsHttpHandler, per connection, never a second connection per handler (calls beyond a connection's");
        md.AppendLine("MAX_CONCURRENT_STREAMS wait in the client), the same for every system (each is driven through gRPC). Held: the TCP");
        md.AppendLine("connections the client process had open to the leader at the end of the run (from /proc; its JIT warm-up at C=16");
        md.AppendLine("opens every connection). ops/s and CPU per request are means of the rounds.");
        md.AppendLine();
        md.AppendLine("| workload | C | system | connections | held | ops/s | p99 | server µs/op | client µs/op |");
        md.AppendLine("|---|--:|---|--:|--:|--:|--:|--:|--:|");
        foreach (var (workload, c) in Cells(dim))
            foreach (var l in Systems(baseline, dim))
                foreach (int n in counts)
                {
                    var rs = Matching(s, l, workload, c, 3, Keys.ValueSize, n).ToList();
                    if (rs.Count == 0) continue;
                    string held = string.Join("/", Distinct(rs.Select(r => r.ConnectionsOpen is int o ? o.ToString(CultureInfo.InvariantCulture) : "?")));
                    md.AppendLine($"| {workload} | {c} | {l} | {n} | {held} | {Ops(rs)} | {Ms(rs, r => r.P99)} | {Us(rs, r => r.ServerUsPerOp)} | {Us(rs, r => r.ClientUsPerOp)} |");
                }
        md.AppendLine();
    }

    static void WriteNodes(StringBuilder md, string baseline, Session s)
    {
        var big = s.Runs.Where(r => r.Dimension == "nodes" && r.Nodes != 3).ToList();
        if (big.Count == 0) return;
        int n = big.Max(r => r.Nodes);
        md.AppendLine($"## {n} nodes beside 3");
        md.AppendLine();
        md.AppendLine($"Each system's {n}-node cluster against its 3-node one: the same cells (256 B values, {Join(Distinct(big.Select(r => r.Connections)))} connection(s) per node),");
        md.AppendLine("each cluster alone; a 3-node cell the concurrency section measured is taken from there, any other is measured beside the");
        md.AppendLine($"{n}-node one. A write commits on a majority: 2 of 3, 3 of {n}. Server CPU per request sums every node.");
        md.AppendLine();
        md.AppendLine("| workload | C | system | nodes | ops/s | p50 | p99 | server µs/op | client µs/op | ÷ 3 nodes |");
        md.AppendLine("|---|--:|---|--:|--:|--:|--:|--:|--:|--:|");
        foreach (var (workload, c) in Cells(big))
            foreach (var l in Systems(baseline, big))
            {
                var five = big.Where(r => r.Label == l && r.Workload == workload && r.Concurrency == c && r.Nodes == n).ToList();
                if (five.Count == 0) continue;
                var three = Matching(s, l, workload, c, 3, Keys.ValueSize, five[0].Connections).ToList();
                string ratio = MeanOps(three) is double t && MeanOps(five) is double f ? $"**{f / t:0.00}**" : "—";
                foreach (var (rs, nodes, r) in new[] { (three, 3, ""), (five, n, ratio) })
                    md.AppendLine($"| {workload} | {c} | {l} | {nodes} | {Ops(rs)} | {Ms(rs, x => x.P50)} | {Ms(rs, x => x.P99)} | {Us(rs, x => x.ServerUsPerOp)} | {Us(rs, x => x.ClientUsPerOp)} | {r} |");
            }
        md.AppendLine();
    }

    static void WriteValues(StringBuilder md, string baseline, Session s)
    {
        var dim = s.Runs.Where(r => r.Dimension == "values").ToList();
        if (dim.Count == 0) return;
        int connections = dim[0].Connections;
        var sizes = Distinct(dim.Select(r => r.ValueBytes).Append(Keys.ValueSize)).Order().ToList();
        md.AppendLine("## Value sizes");
        md.AppendLine();
        md.AppendLine($"3 nodes, {connections} connection(s) per node; each value size has keys of its own (`bench/vSIZE/key-N`), as many as hold");
        md.AppendLine("about 64 MiB (at most 10,000, at least 64), preloaded before the runs. MiB/s: value bytes moved by the completed requests.");
        md.AppendLine("Request limits: RaftPS 4 MiB + 64 KiB (`--max-request-bytes`, its default), DotNextNode's gRPC 4 MiB, etcd as");
        md.AppendLine("`--max-request-bytes` in the table of the machine above (its default, 1.5 MiB, is raised so 1 MiB values fit with room).");
        md.AppendLine();
        md.AppendLine("| workload | C | value | system | keys | ops/s | MiB/s | p50 | p99 | server µs/op | client µs/op |");
        md.AppendLine("|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|");
        foreach (var (workload, c) in Cells(dim))
            foreach (int size in sizes)
                foreach (var l in Systems(baseline, dim))
                {
                    var rs = Matching(s, l, workload, c, 3, size, connections).ToList();
                    if (rs.Count == 0) continue;
                    md.AppendLine($"| {workload} | {c} | {Bytes(size)} | {l} | {rs[0].Keys:N0} | {Ops(rs)} | {rs.Average(r => r.OpsPerSec) * size / (1 << 20):0.0} | {Ms(rs, r => r.P50)} | {Ms(rs, r => r.P99)} | {Us(rs, r => r.ServerUsPerOp)} | {Us(rs, r => r.ClientUsPerOp)} |");
                }
        md.AppendLine();
    }

    static void WriteKeys(StringBuilder md, string baseline, Session s)
    {
        if (s.Preloads.Count == 0) return;
        long keys = s.Preloads.Max(p => (long)p["keys"]!);
        md.AppendLine($"## {keys:N0} keys");
        md.AppendLine();
        md.AppendLine($"A fresh 3-node cluster of each system, alone, preloaded with {keys:N0} distinct keys of 256 B by many concurrent writers, then");
        md.AppendLine("5 s at rest. RSS: VmRSS per node before (fresh, with a leader) and after. Live data: the keys' and values' bytes.");
        md.AppendLine("Bytes per key: RSS after ÷ keys (growth: (after − before) ÷ keys).");
        md.AppendLine();
        md.AppendLine("| system | node | before MiB | after MiB | bytes per key | growth per key | RSS ÷ live data |");
        md.AppendLine("|---|--:|--:|--:|--:|--:|--:|");
        var preloads = s.Preloads.OrderBy(p => (string)p["label"]! == baseline ? 0 : 1).ToList();
        foreach (var p in preloads)
        {
            string label = (string)p["label"]!;
            long live = (long)p["live_bytes"]!;
            long n = (long)p["keys"]!;
            var before = s.Rss.Where(r => (string?)r["label"] == label && (string?)r["phase"] == "keys-fresh").ToDictionary(r => (int)r["node"]!, r => (long?)r["rss_kib"]);
            foreach (var r in s.Rss.Where(r => (string?)r["label"] == label && (string?)r["phase"] == "keys-loaded"))
            {
                int node = (int)r["node"]!;
                if ((long?)r["rss_kib"] is not long after) { md.AppendLine($"| {label} | {node} | — | — | — | — | — |"); continue; }
                long? b = before.GetValueOrDefault(node);
                md.AppendLine($"| {label} | {node} | {(b is long bk ? $"{bk / 1024.0:0.0}" : "—")} | {after / 1024.0:0.0} | {after * 1024.0 / n:0} | " +
                    $"{(b is long bb ? $"{(after - bb) * 1024.0 / n:0}" : "—")} | **{after * 1024.0 / live:0.00}x** |");
            }
        }
        md.AppendLine();
        foreach (var p in preloads)
            md.AppendLine($"- {(string)p["label"]!}: {(long)p["keys"]!:N0} keys, {(long)p["live_bytes"]! / 1048576.0:0.0} MiB of live data " +
                $"({(long)p["live_bytes"]! / (double)(long)p["keys"]!:0} bytes per key), written in {(double)p["seconds"]!:0.0} s ({(double)p["ops_per_s"]!:N0} writes/s, " +
                $"C={(int)p["concurrency"]!} over {(int)p["connections"]!} connections){Elections(p)}.");
        md.AppendLine();
    }

    /// <summary>An election during the preload (a node paused too long: GC, disk) is a finding, said beside its rate.</summary>
    static string Elections(JsonNode p) => (long?)p["terms_elapsed"] is not long terms ? ""
        : terms == 0 && (long?)p["retried_writes"] == 0 ? "; the leader stayed"
        : $"; **the leader changed** ({terms} term(s) elapsed, {(int?)p["leader_switches"]} switch(es), {(long?)p["retried_writes"]} write(s) retried)";

    static string Bytes(int b) => b >= 1 << 20 && b % (1 << 20) == 0 ? $"{b >> 20} MiB"
        : b >= 1024 && b % 1024 == 0 ? $"{b >> 10} KiB" : $"{b} B";

    /// <summary>The RSS ÷ live data of each node after the big preload, per system (for the goals).</summary>
    static Dictionary<string, List<double>> KeysRatios(Session s)
    {
        var result = new Dictionary<string, List<double>>();
        foreach (var p in s.Preloads)
        {
            string label = (string)p["label"]!;
            long live = (long)p["live_bytes"]!;
            result[label] = s.Rss.Where(r => (string?)r["label"] == label && (string?)r["phase"] == "keys-loaded")
                .Select(r => (long?)r["rss_kib"]).Where(v => v is not null).Select(v => v!.Value * 1024.0 / live).ToList();
        }
        return result;
    }
}
