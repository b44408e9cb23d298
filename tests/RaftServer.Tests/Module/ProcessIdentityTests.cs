using System.Diagnostics;
using RaftPS.Cluster;

namespace RaftServer.Tests.Module;

/// <summary>
/// The module's check that a process id still belongs to the node it started before it signals it
/// (src/RaftPS.Module/Cluster/ProcessIdentity.cs and NodeWatchdog.cs, compiled into this assembly).
/// </summary>
public sealed class ProcessIdentityTests
{
    private static readonly string[] Sleep = ["sleep"];

    [Fact]
    public void The_start_time_is_field_22_counted_after_the_last_parenthesis_of_the_command_name()
    {
        var fields = string.Join(' ', Enumerable.Range(3, 50).Select(i => $"f{i}"));
        Assert.Equal("f22", ProcessIdentity.StartTimeFromStat($"1234 (a) b (c d)) {fields}\n"));
        Assert.Equal("f22", ProcessIdentity.StartTimeFromStat($"1 (sh) {fields}"));
        Assert.Null(ProcessIdentity.StartTimeFromStat("1 (sh) S 1 2"));
        Assert.Null(ProcessIdentity.StartTimeFromStat("garbage"));
        Assert.Equal("Sun Dec 6 08:29:30 2026", ProcessIdentity.NormalizeSpaces("  Sun Dec  6 08:29:30 2026\n"));
    }

    [Fact]
    public void Only_the_same_id_start_time_and_program_match()
    {
        var started = new ProcessIdentity(42, "1000", "/usr/bin/setsid");
        string[] programs = ["/opt/raftps/server/linux-x64/RaftServer", "/usr/bin/setsid", "/usr/bin/dash"];
        Assert.True(started.Matches(new ProcessIdentity(42, "1000", "/opt/raftps/server/linux-x64/RaftServer"), programs));
        Assert.True(started.Matches(new ProcessIdentity(42, "1000", "/opt/raftps/server/linux-x64/RaftServer (deleted)"), programs));
        Assert.True(started.Matches(new ProcessIdentity(42, "1000", null), programs)); // another user's: the start time decides
        Assert.False(started.Matches(new ProcessIdentity(42, "1001", "/opt/raftps/server/linux-x64/RaftServer"), programs)); // the id was reused
        Assert.False(started.Matches(new ProcessIdentity(42, "1000", "/usr/bin/python3"), programs));
        Assert.False(started.Matches(new ProcessIdentity(43, "1000", "/usr/bin/setsid"), programs));
        Assert.False(started.Matches(null, programs)); // gone
    }

    [SkippableFact]
    public async Task A_real_process_matches_until_it_ends_and_then_never_again()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "reads /proc");
        using var sleeper = Process.Start("sleep", "60");
        var identity = ProcessIdentity.Read(sleeper.Id);
        Assert.NotNull(identity);
        Assert.Equal("sleep", Path.GetFileName(identity.Executable));
        Assert.True(identity.StillRuns(Sleep));
        Assert.False(identity.StillRuns(["python3"]));
        // The same id read later, as another process would have it: another start time.
        Assert.False(identity.Matches(identity with { StartTime = identity.StartTime + "1" }, Sleep));

        sleeper.Kill();
        await sleeper.WaitForExitAsync();
        Assert.False(identity.StillRuns(Sleep));
        Assert.Null(ProcessIdentity.Read(sleeper.Id) is { } reused && reused.StartTime == identity.StartTime ? reused : null);
    }

    [SkippableFact]
    public async Task The_watchdog_stops_the_node_once_its_owner_is_gone()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "reads /proc");
        using var owner = Process.Start("sleep", "60");
        using var node = Process.Start("sleep", "60");
        try
        {
            using var watchdog = NodeWatchdog.Start(null, ProcessIdentity.Read(owner.Id)!, ProcessIdentity.Read(node.Id)!);
            Assert.NotNull(watchdog);
            await Task.Delay(300); // the watchdog is in its loop
            Assert.False(node.HasExited);
            owner.Kill();
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await node.WaitForExitAsync(deadline.Token);
        }
        finally
        {
            if (!owner.HasExited) owner.Kill();
            if (!node.HasExited) node.Kill();
        }
    }

    [SkippableFact]
    public async Task The_watchdog_never_signals_a_process_that_is_not_the_one_it_was_given()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "reads /proc");
        using var owner = Process.Start("sleep", "60");
        using var stranger = Process.Start("sleep", "60");
        try
        {
            // The node's id now belongs to another process: same id, another start time (as after reuse).
            var real = ProcessIdentity.Read(stranger.Id)!;
            using var watchdog = NodeWatchdog.Start(null, ProcessIdentity.Read(owner.Id)!, real with { StartTime = "1" });
            Assert.NotNull(watchdog);
            owner.Kill();
            // The watchdog sees that its node is not there and ends without a signal.
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await watchdog.WaitForExitAsync(deadline.Token);
            Assert.False(stranger.HasExited);
        }
        finally
        {
            if (!owner.HasExited) owner.Kill();
            if (!stranger.HasExited) stranger.Kill();
        }
    }
}
