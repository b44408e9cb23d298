using System.Globalization;
using System.Text;

namespace RaftServer.Tests.NetworkFaults;

/// <summary>What the history says about one fault: its window runs from the fault's start to the next fault's start.</summary>
internal sealed record FaultStats(
    FaultRecord Fault,
    int Done,
    int Failed,
    int Unknown,
    /// <summary>The longest time with no write acknowledged, from the fault's start to its heal.</summary>
    double GapDuringMs,
    /// <summary>When that longest stretch began, on the test's clock (the time the nodes' output lines carry).</summary>
    long GapDuringStartMs,
    /// <summary>The longest time with no write acknowledged, from the heal to the end of the window.</summary>
    double GapAfterHealMs,
    /// <summary>From the heal until every node agreed on one leader and took a write; null if it never did.</summary>
    double? HealToLeaderMs,
    /// <summary>The slowest acknowledged write called in the window (its first call to its acknowledgement).</summary>
    double SlowestWriteMs)
{
    public static FaultStats Of(FaultRecord fault, IReadOnlyList<RecordedOp> history)
    {
        var ops = history.Where(o => o.Call >= fault.Start && o.Call < fault.End).ToList();
        var acked = history.Where(o => o.IsWrite && o.Outcome == OpOutcome.Ok).Select(o => o.Return).Order().ToList();
        var during = LongestGap(acked, fault.Start, fault.Heal);
        return new FaultStats(fault,
            ops.Count(o => o.Outcome == OpOutcome.Ok),
            ops.Count(o => o.Outcome == OpOutcome.Failed),
            ops.Count(o => o.Outcome == OpOutcome.Unknown),
            during.Length / 1000.0,
            during.Start / 1000,
            LongestGap(acked, fault.Heal, fault.End).Length / 1000.0,
            fault.Converged is { } c ? (c - fault.Heal) / 1000.0 : null,
            ops.Where(o => o.IsWrite && o.Outcome == OpOutcome.Ok).Select(o => (o.Return - o.Call) / 1000.0).DefaultIfEmpty(0).Max());
    }

    /// <summary>The longest stretch of [from, to) with no time in <paramref name="sorted"/> (its ends included), and where it starts.</summary>
    public static (long Length, long Start) LongestGap(IReadOnlyList<long> sorted, long from, long to)
    {
        long longest = 0, start = from, last = from;
        foreach (var t in sorted)
        {
            if (t < from) continue;
            if (t >= to) break;
            if (t - last > longest) (longest, start) = (t - last, last);
            last = t;
        }
        return to - last > longest ? (to - last, last) : (longest, start);
    }

    /// <summary>A table per fault kind: totals over its faults, and the worst of each measure.</summary>
    public static string Table(IReadOnlyList<FaultStats> stats)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture,
            $"{"fault",-15} {"n",2} {"done",6} {"failed",6} {"unknown",7} {"gap during",10} {"gap after",9} {"heal->leader",12} {"slowest write",13}");
        foreach (var g in stats.GroupBy(s => s.Fault.Kind))
        {
            var healToLeader = g.Any(s => s.HealToLeaderMs is null) ? "never" : $"{g.Max(s => s.HealToLeaderMs)!.Value:0} ms";
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"{g.Key,-15} {g.Count(),2} {g.Sum(s => s.Done),6} {g.Sum(s => s.Failed),6} {g.Sum(s => s.Unknown),7} {g.Max(s => s.GapDuringMs),7:0} ms {g.Max(s => s.GapAfterHealMs),6:0} ms {healToLeader,12} {g.Max(s => s.SlowestWriteMs),10:0} ms");
        }
        return sb.ToString();
    }

    public string Line() => string.Create(CultureInfo.InvariantCulture,
        $"{Fault.Kind} ({Fault.Detail}): {Done} done, {Failed} failed, {Unknown} unknown; no write for {GapDuringMs:0} ms during (from {GapDuringStartMs} ms), {GapAfterHealMs:0} ms after the heal; " +
        $"heal to leader {(HealToLeaderMs is { } h ? $"{h:0} ms" : "never")}; slowest write {SlowestWriteMs:0} ms");
}
