using Google.Protobuf;
using Grpc.Core;
using RaftPS.Protocol;
using Xunit.Abstractions;

namespace RaftServer.Tests.Integration;

/// <summary>
/// The storage quota on a real 3-node cluster (--quota-bytes 1 MiB): once the keys and values
/// fill it, writes are refused RESOURCE_EXHAUSTED "NOSPACE" (through any node), nothing
/// acknowledged is lost and nothing refused is written, reads and deletes are served, every node's
/// Status shows the quota, the leader's the alarm, and deletes clear it.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class StorageQuotaProcessTests(ITestOutputHelper output)
{
    private const int Quota = 1 << 20;
    private const int ValueBytes = 64 << 10;

    [Fact]
    public async Task A_write_while_the_quota_alarm_is_on_is_refused_with_nothing_lost_reads_and_deletes_are_served_and_deletes_clear_it()
    {
        await using var cluster = await LocalCluster.StartAsync(3, "quota", "--quota-bytes", Quota.ToString());
        var leader = await cluster.WaitForLeaderAsync();
        var follower = cluster.Ids.First(id => id != leader);
        var value = ByteString.CopyFrom(new byte[ValueBytes]);

        var written = new List<string>();
        RpcException? refused = null;
        for (var i = 0; i < 100 && refused is null; i++)
        {
            try
            {
                // Through a follower, which forwards to the leader: the leader decides.
                await LocalCluster.RetryAsync(() => cluster.Client(follower).SetAsync(new SetRequest { Key = $"k{i:D3}", Value = value },
                    deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync);
                written.Add($"k{i:D3}");
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.ResourceExhausted)
            {
                refused = e;
            }
        }
        Assert.NotNull(refused);
        output.WriteLine($"{written.Count} writes of {ValueBytes} bytes, then: {refused.Status.Detail}");
        Assert.StartsWith($"NOSPACE: the cluster's storage quota of {Quota} bytes is used up", refused.Status.Detail);
        Assert.Contains("delete keys or raise --quota-bytes", refused.Status.Detail);
        var refusedKey = $"k{written.Count:D3}";

        // The alarm is on: even a small write is refused, one by one in a batch too.
        var small = await Assert.ThrowsAsync<RpcException>(() => cluster.Client(leader).SetAsync(new SetRequest { Key = "small", Value = ByteString.CopyFromUtf8("x") }).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, small.StatusCode);
        var batch = await cluster.Client(leader).SetManyAsync(new SetManyRequest { Items = { new SetRequest { Key = "batch", Value = ByteString.CopyFromUtf8("x") } } });
        Assert.Equal((int)StatusCode.ResourceExhausted, batch.Results[0].Code);
        Assert.StartsWith("NOSPACE:", batch.Results[0].Error);

        var status = await cluster.StatusAsync(leader);
        Assert.True(status.NospaceAlarm);
        Assert.Equal(Quota, status.QuotaBytes);
        Assert.True(status.LiveBytes <= Quota && status.LiveBytes > Quota - 2 * ValueBytes, $"live bytes {status.LiveBytes}");
        foreach (var id in cluster.Ids)
            Assert.Equal(Quota, (await cluster.StatusAsync(id)).QuotaBytes);

        // Reads: everything acknowledged is there, on every node; nothing refused is.
        foreach (var id in cluster.Ids)
        {
            foreach (var key in written) Assert.NotNull(await cluster.GetAsync(id, key));
            Assert.Null(await cluster.GetAsync(id, refusedKey));
            Assert.Null(await cluster.GetAsync(id, "small"));
            Assert.Null(await cluster.GetAsync(id, "batch"));
        }

        // Deletes are served, and bring the alarm down once at 90% of the quota.
        var deleted = 0;
        while ((await cluster.StatusAsync(leader)).NospaceAlarm)
        {
            Assert.True(deleted < written.Count, "the alarm never cleared");
            var d = await LocalCluster.RetryAsync(() => cluster.Client(follower).DeleteAsync(new DeleteRequest { Key = written[deleted] }, deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync);
            Assert.True(d.Existed);
            deleted++;
        }
        Assert.True((await cluster.StatusAsync(leader)).LiveBytes <= Quota / 10 * 9);
        await cluster.SetAsync(follower, "after", "writes are taken again");
        Assert.Equal("writes are taken again", await cluster.GetAsync(leader, "after"));
        foreach (var key in written.Skip(deleted)) Assert.NotNull(await cluster.GetAsync(leader, key));
    }
}
