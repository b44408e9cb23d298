using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using R = RaftPS.Protocol;

namespace RaftPS.Bench;

/// <summary>
/// The numbers of issue 20, on a 3-node RaftPS cluster this command starts itself (loopback, temp
/// directory): the time for a new node to catch up with ~100 MB of live data, and the longest
/// write gap (and the write throughput) while a member is added, a follower is removed, the
/// leadership is moved and the leader is removed, each against a baseline window of the same
/// length with no change.
/// </summary>
/// <remarks>
/// A round, starting from 3 voters and the data: add a 4th node with no writes running (the
/// catch-up time); remove a follower; move the leadership; add a node while writing; remove the
/// leader; so every round ends with 3 voters again. A removed node's process is stopped and its
/// data deleted, and every id is new (a removed id is never accepted again). Each round runs on a
/// new cluster, so every round starts alike; --one-cluster runs them all on one, where later
/// rounds add nodes through leaders that joined the cluster themselves.
/// </remarks>
static class MembershipBench
{
    internal const int WriteValueBytes = 256;
    const string FillPrefix = "fill/";

    public static async Task<int> RunAsync(Args a, CancellationToken ct)
    {
        string server = Path.GetFullPath(a.Required("server"));
        int repeat = a.Int("repeat", 5);
        int concurrency = a.Int("concurrency", 8);
        int catchupMb = a.Int("catchup-mb", 100);
        int fillValueBytes = a.Int("value-bytes", 4096);
        int writeKeys = a.Int("write-keys", 1000);
        var warmup = TimeSpan.FromSeconds(a.Double("warmup-s", 1));
        var settle = TimeSpan.FromSeconds(a.Double("settle-s", 1));
        var tail = TimeSpan.FromMilliseconds(a.Int("tail-ms", 250));
        string extra = a.Str("server-args", "")!;
        string? json = a.Str("json");
        bool keep = a.Flag("keep-dir");
        bool oneCluster = a.Flag("one-cluster");
        a.CheckAllUsed();
        if (!File.Exists(server)) throw new UsageException($"--server: {server} does not exist (dotnet pwsh ./build.ps1 build lays out out/RaftPS/server/<rid>/RaftServer)");
        if (repeat < 1 || concurrency < 1 || catchupMb < 1 || fillValueBytes < 1 || writeKeys < 1) throw new UsageException("--repeat, --concurrency, --catchup-mb, --value-bytes and --write-keys must be positive");

        string loadStart = LoadAverage();
        Console.Error.WriteLine($"load average {loadStart}");
        string[] serverArgs = extra.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        int fillKeys = (int)((long)catchupMb * 1_000_000 / fillValueBytes);
        long live = fillKeys * (long)(BenchCluster.Key(FillPrefix, 0).Length + fillValueBytes);
        var catchups = new List<CatchUp>();
        var windows = new List<Window>();

        // A new cluster for every round (the same start for each), or with --one-cluster one for all.
        async Task<Run> NewClusterAsync(BenchCluster cluster)
        {
            var bench = new Run(cluster, concurrency, writeKeys, warmup, settle, tail, ct);
            cluster.StartInitial(3);
            int leader = await cluster.WaitForLeaderAsync(bench.Voters, ct);
            // ~M MB of live data in values of --value-bytes, written once; the writer of the windows
            // overwrites its own small key space, so the live data stays about this size.
            var sw = Stopwatch.StartNew();
            long fillLast = await cluster.WriteAsync(leader, fillKeys, fillKeys, fillValueBytes, concurrency: 16, FillPrefix, ct);
            foreach (var id in bench.Voters) await cluster.WaitForAppliedAsync(id, fillLast, TimeSpan.FromMinutes(5), ct);
            Console.Error.WriteLine($"cluster in {cluster.Dir}: filled {live / 1e6:0.0} MB ({fillKeys:N0} keys of {fillValueBytes:N0} B) through node {leader} in {sw.Elapsed.TotalSeconds:0.0} s");
            return bench;
        }

        async Task RoundAsync(Run bench, int round)
        {
            var idle = await bench.AddMemberAsync() with { Round = round };
            catchups.Add(idle);
            Console.Error.WriteLine($"round {round}: {idle.Describe()}");
            EmitCatchUp(json, idle);
            foreach (var change in new[] { Change.RemoveFollower, Change.Transfer, Change.AddMember, Change.RemoveLeader })
            {
                var w = await bench.WindowAsync(change) with { Round = round };
                windows.Add(w);
                Console.Error.WriteLine($"round {round}: {w.Describe()}");
                if (w.CatchUp is { } underLoad) catchups.Add(underLoad with { Round = round });
                EmitWindow(json, w);
            }
        }

        if (oneCluster)
        {
            await using var cluster = new BenchCluster(server, serverArgs, keep, "members");
            var bench = await NewClusterAsync(cluster);
            for (int round = 1; round <= repeat; round++) await RoundAsync(bench, round);
        }
        else
        {
            for (int round = 1; round <= repeat; round++)
            {
                await using var cluster = new BenchCluster(server, serverArgs, keep, "members");
                await RoundAsync(await NewClusterAsync(cluster), round);
            }
        }

        string loadEnd = LoadAverage();
        Console.WriteLine();
        Console.WriteLine($"membership: 3 voters on loopback, {live / 1e6:0.0} MB of live data ({fillKeys:N0} keys of {fillValueBytes:N0} B); " +
            $"writer C={concurrency} of {WriteValueBytes} B values over {writeKeys:N0} keys; {repeat} rounds{(oneCluster ? " on one cluster" : ", a new cluster each")}; load average {loadStart} at start, {loadEnd} at end");
        Console.WriteLine(Table(catchups, windows));
        Program.EmitJson(json, new Dictionary<string, object?>
        {
            ["kind"] = "membership_summary", ["rounds"] = repeat, ["one_cluster"] = oneCluster, ["concurrency"] = concurrency,
            ["live_bytes"] = live, ["fill_keys"] = fillKeys, ["fill_value_bytes"] = fillValueBytes,
            ["write_value_bytes"] = WriteValueBytes, ["write_keys"] = writeKeys, ["tail_ms"] = tail.TotalMilliseconds,
            ["server"] = server, ["server_args"] = extra,
            ["cores"] = Environment.ProcessorCount, ["cpu"] = Report.CpuModel(), ["memory"] = Report.MemTotal(),
            ["kernel"] = Report.ReadTrim("/proc/sys/kernel/osrelease"), ["dotnet"] = Environment.Version.ToString(),
            ["load_average_start"] = loadStart, ["load_average_end"] = loadEnd,
            ["time_utc"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ"),
        });
        return 0;
    }

    static string LoadAverage() => string.Join(' ', Report.ReadTrim("/proc/loadavg").Split(' ').Take(3));

    static string Table(List<CatchUp> catchups, List<Window> windows)
    {
        var t = new System.Text.StringBuilder();
        t.AppendLine("| measure | median | max | rounds |");
        t.AppendLine("|---|--:|--:|---|");
        foreach (var underLoad in new[] { false, true })
        {
            var cs = catchups.Where(c => c.UnderLoad == underLoad).ToList();
            if (cs.Count == 0) continue;
            string when = underLoad ? "while writing" : "no writes";
            t.AppendLine(Row($"catch-up ({when}): AddMember → new node answers", cs.Select(c => c.AnswerMs)));
            t.AppendLine(Row($"catch-up ({when}): AddMember → caught_up", cs.Select(c => c.CaughtUpMs)));
            t.AppendLine(Row($"catch-up ({when}): AddMember → promotion committed", cs.Select(c => c.PromotedMs)));
            t.AppendLine($"| catch-up ({when}): came by snapshot | {cs.Count(c => c.NewSnapshotIndex > 0)} of {cs.Count} | | " +
                string.Join(", ", cs.Select(c => $"snapshot {c.NewSnapshotIndex:N0} + {c.EntriesAfterSnapshot:N0} entries")) + " |");
        }
        foreach (var change in new[] { Change.AddMember, Change.RemoveFollower, Change.RemoveLeader, Change.Transfer })
        {
            var ws = windows.Where(w => w.Change == change).ToList();
            if (ws.Count == 0) continue;
            string name = Name(change);
            t.AppendLine(Row($"{name}: window (the call + {ws[0].TailMs:0} ms)", ws.Select(w => w.WindowMs)));
            t.AppendLine(Row($"{name}: longest write gap", ws.Select(w => w.Gap.MaxGapMs)));
            t.AppendLine(Row($"{name}: baseline longest gap, same length", ws.Select(w => w.Baseline.MaxGapMs)));
            t.AppendLine(Row($"{name}: writes/s during", ws.Select(w => w.Gap.OpsPerSec), "N0"));
            t.AppendLine(Row($"{name}: writes/s baseline", ws.Select(w => w.Baseline.OpsPerSec), "N0"));
            if (ws.Any(w => w.RemovedNodeLearned is not null))
                t.AppendLine($"| {name}: the removed node learned it within 10 s | {ws.Count(w => w.RemovedNodeLearned == true)} of {ws.Count} | | |");
            t.AppendLine($"| {name}: failed write attempts (retried) during / baseline | {ws.Sum(w => w.Gap.Failures)} / {ws.Sum(w => w.Baseline.Failures)} | | " +
                string.Join(", ", ws.Select(w => $"{w.Gap.Failures}/{w.Baseline.Failures}")) + " |");
        }
        return t.ToString();
    }

    static string Row(string name, IEnumerable<double> values, string format = "0")
    {
        var v = values.ToList();
        string F(double x) => x.ToString(format, CultureInfo.InvariantCulture);
        return $"| {name} | {F(Stats.Median(v))} | {F(v.Max())} | {string.Join(", ", v.Select(F))} |";
    }


    internal static string Name(Change c) => c switch
    {
        Change.AddMember => "add a member (learner, catch-up, promote)",
        Change.RemoveFollower => "remove a follower",
        Change.RemoveLeader => "remove the leader",
        Change.Transfer => "move the leadership",
        _ => c.ToString(),
    };

    static void EmitCatchUp(string? json, CatchUp c) => Program.EmitJson(json, new Dictionary<string, object?>
    {
        ["kind"] = "membership_catchup", ["round"] = c.Round, ["under_load"] = c.UnderLoad, ["node"] = c.Node,
        ["added_ms"] = Math.Round(c.AddedMs, 1), ["answer_ms"] = Math.Round(c.AnswerMs, 1), ["caught_up_ms"] = Math.Round(c.CaughtUpMs, 1),
        ["promoted_ms"] = Math.Round(c.PromotedMs, 1), ["new_snapshot_index"] = c.NewSnapshotIndex, ["entries_after_snapshot"] = c.EntriesAfterSnapshot,
        ["leader_snapshot_index"] = c.LeaderSnapshotIndex, ["leader_first_index"] = c.LeaderFirstIndex,
        ["time_utc"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ"),
    });

    static void EmitWindow(string? json, Window w)
    {
        Program.EmitJson(json, new Dictionary<string, object?>
        {
            ["kind"] = "membership_window", ["round"] = w.Round, ["change"] = w.Change.ToString(), ["detail"] = w.Detail,
            ["window_ms"] = Math.Round(w.WindowMs, 1), ["tail_ms"] = w.TailMs,
            ["max_gap_ms"] = Math.Round(w.Gap.MaxGapMs, 1), ["ops"] = w.Gap.Ops, ["ops_per_s"] = Math.Round(w.Gap.OpsPerSec, 1), ["failures"] = w.Gap.Failures,
            ["baseline_max_gap_ms"] = Math.Round(w.Baseline.MaxGapMs, 1), ["baseline_ops"] = w.Baseline.Ops,
            ["baseline_ops_per_s"] = Math.Round(w.Baseline.OpsPerSec, 1), ["baseline_failures"] = w.Baseline.Failures,
            ["removed_node_learned"] = w.RemovedNodeLearned, ["first_error"] = w.FirstError, ["load_average"] = LoadAverage(),
            ["time_utc"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ"),
        });
        if (w.CatchUp is { } c) EmitCatchUp(json, c with { Round = w.Round });
    }

    internal enum Change { AddMember, RemoveFollower, Transfer, RemoveLeader }

    /// <summary>A new node's way in: times from the AddMember call (learner) on.</summary>
    internal sealed record CatchUp(int Round, bool UnderLoad, int Node, double AddedMs, double AnswerMs, double CaughtUpMs, double PromotedMs,
        long NewSnapshotIndex, long EntriesAfterSnapshot, long LeaderSnapshotIndex, long LeaderFirstIndex)
    {
        public string Describe() =>
            $"node {Node} added as a learner in {AddedMs:0} ms, answers at {AnswerMs:0} ms, caught up at {CaughtUpMs:0} ms, promoted at {PromotedMs:0} ms " +
            $"({(NewSnapshotIndex > 0 ? $"by snapshot at index {NewSnapshotIndex:N0}" : "by log alone")} plus {EntriesAfterSnapshot:N0} entries; leader's log starts at {LeaderFirstIndex:N0})" +
            (UnderLoad ? ", while writing" : "");
    }

    internal sealed record Window(int Round, Change Change, string Detail, double WindowMs, double TailMs, GapWriter.Stats Gap, GapWriter.Stats Baseline,
        string? FirstError, CatchUp? CatchUp, bool? RemovedNodeLearned)
    {
        public string Describe() =>
            $"{Name(Change)} ({Detail}): window {WindowMs:0} ms, longest write gap {Gap.MaxGapMs:0.0} ms (baseline {Baseline.MaxGapMs:0.0} ms), " +
            $"{Gap.OpsPerSec:N0} writes/s (baseline {Baseline.OpsPerSec:N0}), {Gap.Failures} failed attempts (baseline {Baseline.Failures})" +
            (RemovedNodeLearned == false ? "; THE REMOVED NODE STILL LISTS ITSELF" : "") +
            (FirstError is null ? "" : $"; first error: {FirstError}");
    }

    /// <summary>One benchmark session: the cluster, its voters as this program changed them, and the steps.</summary>
    sealed class Run(BenchCluster cluster, int concurrency, int writeKeys, TimeSpan warmup, TimeSpan settle, TimeSpan tail, CancellationToken ct)
    {
        static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
        readonly List<int> _voters = [0, 1, 2];
        int _nextId = 3;

        public int[] Voters { get { lock (_voters) return [.. _voters]; } }

        /// <summary>Adds a new node as a learner, starts it with --join and an empty data directory,
        /// waits until the leader reports it caught up, promotes it.</summary>
        public async Task<CatchUp> AddMemberAsync(bool underLoad = false)
        {
            int id = _nextId++;
            int leader = await cluster.WaitForLeaderAsync(Voters, ct);
            int port = cluster.NewPort(id);
            long t0 = Stopwatch.GetTimestamp();
            await CallAsync(c => c.AddMemberAsync(new R.AddMemberRequest { Id = id, Address = "127.0.0.1", Port = port, Learner = true },
                deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct).ResponseAsync, leader);
            double added = Ms(t0);
            cluster.StartJoining(id, leader);
            // Its port first: a gRPC channel whose first connection is refused waits out a reconnect
            // back-off (about 1 s) before it tries again, which would be measured as the node's.
            await cluster.WaitForPortAsync(id, Patience, ct);
            await cluster.WaitForAppliedAsync(id, 0, Patience, ct);
            double answer = Ms(t0);
            var sw = Stopwatch.StartNew();
            while (true)
            {
                leader = await cluster.WaitForLeaderAsync(Voters, ct);
                try
                {
                    var members = await cluster.Client(leader).ListMembersAsync(new R.ListMembersRequest(), deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: ct);
                    if (members.Members.FirstOrDefault(m => m.Node.Id == id) is { CaughtUp: true, Reachable: true }) break;
                }
                catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded) { }
                cluster.ThrowIfExited(id);
                if (sw.Elapsed > Patience) throw new TimeoutException($"node {id} did not catch up within {Patience.TotalSeconds:0} s: {await DescribeAsync(id, leader)} (logs in {cluster.Dir})");
                await Task.Delay(10, ct);
            }
            double caughtUp = Ms(t0);
            var joined = await cluster.StatusAsync(id, ct);
            var leaderStatus = await cluster.StatusAsync(leader, ct);
            await CallAsync(c => c.PromoteMemberAsync(new R.PromoteMemberRequest { Id = id }, deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct).ResponseAsync, leader);
            double promoted = Ms(t0);
            lock (_voters) _voters.Add(id);
            return new CatchUp(0, underLoad, id, added, answer, caughtUp, promoted, joined.SnapshotIndex,
                joined.AppliedIndex - joined.SnapshotIndex, leaderStatus.SnapshotIndex, leaderStatus.FirstIndex);
        }

        /// <summary>How a new node and the leader see each other, for an error message.</summary>
        async Task<string> DescribeAsync(int id, int leader)
        {
            try
            {
                var s = await cluster.StatusAsync(id, ct);
                var m = (await cluster.Client(leader).ListMembersAsync(new R.ListMembersRequest(), deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: ct))
                    .Members.FirstOrDefault(x => x.Node.Id == id);
                return $"it is in term {s.Term}, knows leader {s.Leader?.Id.ToString(CultureInfo.InvariantCulture) ?? "none"}, snapshot index {s.SnapshotIndex}, " +
                    $"applied {s.AppliedIndex}, members [{string.Join(", ", s.Members.Select(x => x.Id))}]; leader {leader} sees match {m?.MatchIndex}, reachable {m?.Reachable}";
            }
            catch (RpcException e)
            {
                return $"(no status: {e.Status.Detail})";
            }
        }

        /// <summary>
        /// A closed-loop writer runs throughout: warm-up, the change (the call until it is answered,
        /// plus the tail, so clients that must find the new leader are counted), a pause, then a
        /// baseline window of the same length with no change.
        /// </summary>
        public async Task<Window> WindowAsync(Change change)
        {
            int leader = await cluster.WaitForLeaderAsync(Voters, ct);
            await using var writer = new GapWriter(cluster, () => Voters, concurrency, writeKeys, ct);
            writer.Start();
            await Task.Delay(warmup, ct);

            int? stop = null;
            bool? learned = null;
            CatchUp? catchUp = null;
            string detail;
            long t0 = Stopwatch.GetTimestamp();
            switch (change)
            {
                case Change.AddMember:
                    catchUp = await AddMemberAsync(underLoad: true);
                    detail = $"node {catchUp.Node}";
                    break;
                case Change.RemoveFollower:
                {
                    int follower = Voters.Where(v => v != leader).Min();
                    Drain(follower);
                    await CallAsync(c => c.RemoveMemberAsync(new R.RemoveMemberRequest { Id = follower }, deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct).ResponseAsync, leader);
                    detail = $"node {follower}, leader {leader}";
                    stop = follower;
                    break;
                }
                case Change.RemoveLeader:
                {
                    Drain(leader);
                    await CallAsync(c => c.RemoveMemberAsync(new R.RemoveMemberRequest { Id = leader }, deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct).ResponseAsync, leader);
                    detail = $"node {leader}";
                    stop = leader;
                    break;
                }
                case Change.Transfer:
                {
                    int to = Voters.Where(v => v != leader).Min();
                    var reply = await CallAsync(c => c.TransferLeadershipAsync(new R.TransferLeadershipRequest { Target = to }, deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct).ResponseAsync, leader);
                    if (reply.Leader?.Id != to) throw new InvalidOperationException($"asked to move the leadership to node {to}, the reply names {reply.Leader?.Id}");
                    detail = $"node {leader} → {to}";
                    break;
                }
                default:
                    throw new ArgumentOutOfRangeException(nameof(change));
            }
            long t1 = Stopwatch.GetTimestamp() + (long)(tail.TotalSeconds * Stopwatch.Frequency);
            await Task.Delay(tail, ct);
            if (stop is int removed)
            {
                // A removed node keeps running (and says it is no member) until it is stopped:
                // stop it as an operator would, and free its disk.
                learned = await cluster.WaitUntilNotMemberAsync(removed, TimeSpan.FromSeconds(10), ct);
                if (learned == false)
                    Console.Error.WriteLine($"  warning: node {removed} still lists itself as a member 10 s after its removal was committed (logs in {cluster.Dir})");
                cluster.Kill(removed);
                cluster.DeleteData(removed);
            }
            await cluster.WaitForLeaderAsync(Voters, ct);
            await Task.Delay(settle, ct);
            long b0 = Stopwatch.GetTimestamp();
            await Task.Delay(Stopwatch.GetElapsedTime(t0, t1), ct);
            long b1 = Stopwatch.GetTimestamp();
            await writer.StopAsync();
            foreach (var v in Voters) cluster.ThrowIfExited(v);
            var during = writer.Measure(t0, t1);
            var baseline = writer.Measure(b0, b1);
            return new Window(0, change, detail, Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds, tail.TotalMilliseconds, during, baseline, writer.FirstError, catchUp, learned);
        }

        /// <summary>Clients leave a node before it is removed (its writers move to the other voters).</summary>
        void Drain(int id)
        {
            lock (_voters) _voters.Remove(id);
        }

        /// <summary>A membership call through <paramref name="first"/> (then the other voters), retried
        /// while there is no leader or another change is still committing.</summary>
        async Task<T> CallAsync<T>(Func<R.RaftClient.RaftClientClient, Task<T>> call, int first)
        {
            var sw = Stopwatch.StartNew();
            var through = new[] { first }.Concat(Voters.Where(v => v != first)).ToArray();
            for (int attempt = 0; ; attempt++)
            {
                int node = through[attempt % through.Length];
                try
                {
                    return await call(cluster.Client(node));
                }
                catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.FailedPrecondition && sw.Elapsed < Patience)
                {
                    Console.Error.WriteLine($"  (retrying through node {node}: {e.StatusCode} {e.Status.Detail})");
                    await Task.Delay(20, ct);
                }
            }
        }

        static double Ms(long since) => Stopwatch.GetElapsedTime(since).TotalMilliseconds;
    }
}

/// <summary>
/// C closed-loop writers spread over the voters (a follower forwards to the leader), each writing
/// its own keys. A failed attempt goes to the leader the error names (the raftps-leader trailer)
/// or to the next voter. Each success's completion time is kept, so any window's longest gap with
/// no completed write can be measured afterwards.
/// </summary>
sealed class GapWriter(BenchCluster cluster, Func<int[]> voters, int concurrency, int keys, CancellationToken ct) : IAsyncDisposable
{
    public sealed record Stats(double MaxGapMs, long Ops, double OpsPerSec, long Failures);

    readonly CancellationTokenSource _stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
    readonly List<long>[] _done = Enumerable.Range(0, concurrency).Select(_ => new List<long>(1 << 16)).ToArray();
    readonly List<long>[] _failed = Enumerable.Range(0, concurrency).Select(_ => new List<long>()).ToArray();
    Task[] _workers = [];
    string? _firstError;

    public string? FirstError => _firstError;

    public void Start() =>
        _workers = Enumerable.Range(0, concurrency).Select(w => Task.Run(() => LoopAsync(w), CancellationToken.None)).ToArray();

    async Task LoopAsync(int w)
    {
        var value = ByteString.CopyFrom(Enumerable.Range(0, MembershipBench.WriteValueBytes).Select(i => (byte)('a' + (i + w) % 26)).ToArray());
        var request = new R.SetRequest { Value = value };
        int[] members = voters();
        int node = members[w % members.Length];
        long n = 0;
        while (!_stop.IsCancellationRequested)
        {
            members = voters();
            if (Array.IndexOf(members, node) < 0) node = members[(int)(n % members.Length)];
            request.Key = $"w/{w:D3}/{n++ % keys:D6}";
            try
            {
                await cluster.Client(node).SetAsync(request, deadline: DateTime.UtcNow.AddSeconds(2), cancellationToken: _stop.Token);
                _done[w].Add(Stopwatch.GetTimestamp());
            }
            catch (RpcException e) when (!_stop.IsCancellationRequested)
            {
                _failed[w].Add(Stopwatch.GetTimestamp());
                Interlocked.CompareExchange(ref _firstError, $"node {node}: {e.StatusCode} {e.Status.Detail}", null);
                if (LeaderHint(e) is int hinted && hinted != node && Array.IndexOf(members, hinted) >= 0) node = hinted;
                else
                {
                    node = members[(Array.IndexOf(members, node) + 1) % members.Length];
                    await Task.Delay(5, CancellationToken.None);
                }
            }
            catch (Exception) when (_stop.IsCancellationRequested) { return; }
        }
    }

    static int? LeaderHint(RpcException e)
    {
        string? v = e.Trailers.GetValue("raftps-leader");
        int space = v?.IndexOf(' ') ?? -1;
        return space > 0 && int.TryParse(v.AsSpan(0, space), NumberStyles.Integer, CultureInfo.InvariantCulture, out int id) ? id : null;
    }

    public async Task StopAsync()
    {
        _stop.Cancel();
        await Task.WhenAll(_workers);
    }

    /// <summary>Between two Stopwatch timestamps: the longest interval between consecutive completed
    /// writes that overlaps the window (counted whole, so a stall that straddles an edge is not cut
    /// short), the writes completed in it, and the failed attempts.</summary>
    public Stats Measure(long from, long to)
    {
        var all = _done.SelectMany(d => d).Order().ToArray();
        long maxGap = 0;
        for (int i = 1; i < all.Length; i++)
            if (all[i] >= from && all[i - 1] <= to) maxGap = Math.Max(maxGap, all[i] - all[i - 1]);
        if (all.Length == 0 || all[0] > to || all[^1] < from) maxGap = to - from;
        long ops = all.LongCount(t => t >= from && t <= to);
        long failures = _failed.Sum(f => f.LongCount(t => t >= from && t <= to));
        double seconds = (double)(to - from) / Stopwatch.Frequency;
        return new Stats(maxGap * 1000.0 / Stopwatch.Frequency, ops, ops / seconds, failures);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested) await StopAsync();
        _stop.Dispose();
    }
}
