using Xunit.Abstractions;

namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>
/// Many randomised schedules (see <see cref="Chaos"/>). Environment:
/// RAFTPS_SEED=n replays one schedule; RAFTPS_SOAK=n runs n schedules instead of the CI share
/// (RAFTPS_SOAK_START=n picks the first seed).
/// </summary>
public class RandomizedScheduleTests(ITestOutputHelper output)
{
    private const int CiSchedules = 1000;

    public static string ReplayCommand(int seed) =>
        $"RAFTPS_SEED={seed} dotnet test tests/RaftServer.Tests -c Release --filter FullyQualifiedName~RandomizedScheduleTests";

    [Fact]
    public void Every_schedule_keeps_raft_safe_live_and_linearizable()
    {
        var (first, count) = SeedRange();
        long operations = 0, elections = 0;
        for (int seed = first; seed < first + count; seed++)
        {
            try
            {
                var sim = Chaos.Run(seed);
                operations += sim.History.Count;
                elections += sim.ElectionsWon;
            }
            catch (Exception e)
            {
                string message = $"schedule {seed} failed: {e.Message}\nreplay: {ReplayCommand(seed)}";
                output.WriteLine(message);
                output.WriteLine(e.ToString());
                throw new Xunit.Sdk.XunitException(message + "\n" + e);
            }
        }
        output.WriteLine($"{count} schedules from seed {first}: {operations} client operations, {elections} elections");
    }

    private static (int First, int Count) SeedRange()
    {
        if (int.TryParse(Environment.GetEnvironmentVariable("RAFTPS_SEED"), out int seed)) return (seed, 1);
        int start = int.TryParse(Environment.GetEnvironmentVariable("RAFTPS_SOAK_START"), out int s) ? s : 1;
        int count = int.TryParse(Environment.GetEnvironmentVariable("RAFTPS_SOAK"), out int n) ? n : CiSchedules;
        return (start, count);
    }
}
