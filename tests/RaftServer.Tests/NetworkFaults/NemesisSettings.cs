using System.Globalization;

namespace RaftServer.Tests.NetworkFaults;

/// <summary>
/// How long and how hard the nemesis test runs. In CI: 5 nodes, 6 clients on 8 keys, every fault
/// kind twice (shuffled), about a minute. RAFTPS_NETFAULT_SOAK=30m (s, m or h) runs a release soak
/// instead: random faults until the time is up, 12 clients on 32 keys. RAFTPS_NETFAULT_SEED=n
/// replays a schedule; RAFTPS_NETFAULT_KINDS=OneWay,Bridge runs only those kinds (investigation).
/// </summary>
internal sealed record NemesisSettings(int Seed, int Nodes, int Clients, int Keys, TimeSpan? Soak, IReadOnlyList<FaultKind> Kinds, int Rounds,
    TimeSpan MinHold, TimeSpan MaxHold, TimeSpan Settle)
{
    public static NemesisSettings FromEnvironment()
    {
        var seed = int.TryParse(Environment.GetEnvironmentVariable("RAFTPS_NETFAULT_SEED"), out var s) ? s : Random.Shared.Next(1, 1_000_000);
        var soak = ParseDuration(Environment.GetEnvironmentVariable("RAFTPS_NETFAULT_SOAK"));
        var kinds = Environment.GetEnvironmentVariable("RAFTPS_NETFAULT_KINDS") is { Length: > 0 } list
            ? list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Enum.Parse<FaultKind>).ToList()
            : Enum.GetValues<FaultKind>().ToList();
        return soak is null
            ? new NemesisSettings(seed, 5, 6, 8, null, kinds, 2, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(1))
            : new NemesisSettings(seed, 5, 12, 32, soak, kinds, int.MaxValue, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(8), TimeSpan.FromSeconds(2));
    }

    /// <summary>"90s", "30m", "2h" (a bare number is minutes).</summary>
    public static TimeSpan? ParseDuration(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        text = text.Trim().ToLowerInvariant();
        var unit = char.IsLetter(text[^1]) ? text[^1] : 'm';
        var number = char.IsLetter(text[^1]) ? text[..^1] : text;
        if (!double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var n) || n <= 0)
            throw new FormatException($"RAFTPS_NETFAULT_SOAK='{text}' is not a duration such as 90s, 30m or 2h");
        return unit switch
        {
            's' => TimeSpan.FromSeconds(n),
            'm' => TimeSpan.FromMinutes(n),
            'h' => TimeSpan.FromHours(n),
            _ => throw new FormatException($"RAFTPS_NETFAULT_SOAK='{text}': the unit must be s, m or h"),
        };
    }

    /// <summary>The faults in order: in CI each kind <see cref="Rounds"/> times, shuffled per round; in a soak, random kinds.</summary>
    public IEnumerable<FaultKind> Schedule(Random random)
    {
        for (var round = 0; round < Rounds; round++)
        {
            if (Soak is not null)
                yield return Kinds[random.Next(Kinds.Count)];
            else
                foreach (var kind in Kinds.OrderBy(_ => random.Next())) yield return kind;
        }
    }

    public TimeSpan Hold(Random random) => MinHold + TimeSpan.FromMilliseconds(random.NextDouble() * (MaxHold - MinHold).TotalMilliseconds);
}
