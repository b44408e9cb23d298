using Microsoft.Extensions.Logging.Abstractions;
using RaftServer.Cluster;
using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.Transport;
using P = RaftPS.Protocol;

namespace RaftServer.Tests.Transport;

public sealed class PeerTransportTests
{
    [Fact]
    public async Task Snapshot_messages_stay_off_the_peer_stream()
    {
        await using var host = await SnapshotTestHost.StartAsync(new FakeSnapshotSink(), new TestLogger());
        var membership = new Membership(1, new MemberSet([new Member(new NodeAddress(1, "127.0.0.1", 1)), new Member(host.Address)]));
        await using var transport = new PeerTransport(membership, NullLogger.Instance);

        // One turn's messages for the peer go out as one batch: it either holds both or only the heartbeat.
        transport.Send([
            new Message { Type = MessageType.Snapshot, From = 1, To = 2, Term = 4, Snapshot = new SnapshotMetadata(10, 3, [1, 2, 3]) },
            new Message { Type = MessageType.Heartbeat, From = 1, To = 2, Term = 4 },
        ]);

        var batch = await host.Batches.Reader.ReadAsync().AsTask().WaitAsync(SnapshotTestHost.Patience);
        var m = Assert.Single(batch.Messages);
        Assert.Equal(P.MessageType.Heartbeat, m.Type);
    }
}
