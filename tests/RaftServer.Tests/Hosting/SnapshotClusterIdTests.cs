using Microsoft.Extensions.Logging.Abstractions;
using RaftServer.Cluster;
using RaftServer.Consensus;
using RaftServer.Hosting;
using RaftServer.StateMachine;
using RaftServer.Storage;
using RaftServer.Transport;

namespace RaftServer.Tests.Hosting;

/// <summary>
/// A node that knows no cluster id takes its leader's with a snapshot only when the core installs
/// it: a snapshot that verified but that the core refuses (stale, or from a node of another
/// cluster) must not give this node an id, or it would refuse its own cluster ever after.
/// </summary>
public sealed class SnapshotClusterIdTests : IDisposable
{
    private const ulong LeadersCluster = 0x0123_4567_89ab_cdef;
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "raftps-tests", "snapid-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly DataDirectory _data;
    private readonly NodeStorage _storage;
    private readonly Membership _membership;
    private readonly SnapshotCoordinator _snapshots;

    public SnapshotClusterIdTests()
    {
        _data = DataDirectory.Open(_dir);
        _storage = NodeStorage.Open(_data, NullLogger.Instance, out _);
        _membership = new Membership(1, new MemberSet([new Member(new NodeAddress(1, "127.0.0.1", 5001))])) { Identity = new ClusterIdentity() };
        _snapshots = new SnapshotCoordinator(_storage, _membership, new SnapshotPolicy(1, 1), _ => { }, NullLoggerFactory.Instance);
    }

    public void Dispose()
    {
        _snapshots.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _storage.Dispose();
        _data.Dispose();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private (SnapshotMetadata Meta, object Handle) Receive(long index)
    {
        var source = SnapshotStore.Open(Path.Combine(_dir, $"leader-{index}"), NullLogger.Instance);
        var kv = new KvStore();
        kv.Apply(new Entry(index, 1, EntryKind.Command, Command.Encode(CommandOp.Set, 0, 1, 1, "k", new byte[10])));
        var image = kv.CaptureImage();
        var file = source.Save(new SnapshotMetadata(index, 1, [1]), s => KvSnapshotCodec.Write(image, s));
        using var upload = ((ISnapshotSink)_snapshots).BeginUpload(file.Meta, LeadersCluster);
        upload.Write(File.ReadAllBytes(file.Path));
        return (file.Meta, upload.Complete());
    }

    [Fact]
    public void A_received_snapshot_the_core_does_not_install_gives_no_cluster_id()
    {
        var (_, handle) = Receive(5);
        _snapshots.Received(handle);
        _snapshots.DropUnclaimed(installed: null);
        Assert.False(_membership.Identity.Known);
    }

    [Fact]
    public void The_installed_snapshot_gives_a_node_that_knows_none_its_leaders_cluster_id()
    {
        var (meta, handle) = Receive(5);
        _snapshots.Received(handle);
        _snapshots.Install(meta, handle);
        _snapshots.DropUnclaimed(handle);
        Assert.Equal(LeadersCluster, _membership.Identity.Id);
    }
}
