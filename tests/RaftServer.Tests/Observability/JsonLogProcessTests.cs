using System.Text.Json;
using Google.Protobuf;
using RaftPS.Protocol;
using RaftServer.Tests.Integration;

namespace RaftServer.Tests.Observability;

/// <summary>--log-format json on a real node: every line is one JSON object with the plain line's message.</summary>
[Collection(ProcessCollection.Name)]
public sealed class JsonLogProcessTests
{
    [Fact]
    public async Task Every_line_is_a_json_object_carrying_the_same_events_as_the_plain_format()
    {
        await using var cluster = new LocalCluster(1, "json-log", "--log-format", "json");
        var node = cluster.Start(0);
        await cluster.WaitForLeaderAsync();
        await cluster.SetAsync(0, "k", "v");
        Assert.True(await node.WaitForOutput("setval k v", LocalCluster.Patience), node.Output);

        var lines = node.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var events = new List<(string Level, string Category, string Message, JsonElement State)>();
        foreach (var line in lines)
        {
            using var doc = JsonDocument.Parse(line); // throws on anything that is not one JSON value
            var root = doc.RootElement;
            Assert.Equal(JsonValueKind.Object, root.ValueKind);
            Assert.True(DateTimeOffset.TryParse(root.GetProperty("Timestamp").GetString(), out _), line);
            events.Add((root.GetProperty("LogLevel").GetString()!, root.GetProperty("Category").GetString()!,
                root.GetProperty("Message").GetString()!, root.GetProperty("State").Clone()));
        }

        // The same messages as the plain lines ("I am a leader. Term: 1"), with their fields.
        var port = cluster.Ports[0];
        Assert.Contains(events, e => e.Message == $"The server starts at 127.0.0.1:{port}" && e.Category == "RaftServer" && e.Level == "Information");
        var leader = Assert.Single(events, e => e.Message == "I am a leader. Term: 1");
        Assert.Equal(1, leader.State.GetProperty("Term").GetInt64());
        Assert.Equal("I am a leader. Term: {Term}", leader.State.GetProperty("{OriginalFormat}").GetString());
        var set = Assert.Single(events, e => e.Message == "Command from client: setval k v");
        Assert.Equal("RaftServer.Requests", set.Category);
        Assert.Equal("k", set.State.GetProperty("Key").GetString());
    }
}
