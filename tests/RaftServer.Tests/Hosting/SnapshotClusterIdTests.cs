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
/// cluster) must not give this node an id, or it would refuse its own cluster ever after; or when the
/// node recovers from it after a crash, which installs it.
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

    [Fact]
    public void A_node_that_stopped_before_installing_a_received_snapshot_takes_its_cluster_id_when_it_recovers_from_it()
    {
        Receive(5); // durable; the process dies before the core sees it

        var recovered = _storage.Reopen();
        Assert.Equal(5, recovered.Snapshot!.Meta.Index);
        _snapshots.Restarted(recovered);

        Assert.Equal(LeadersCluster, _membership.Identity.Id);
    }

    [Fact]
    public void A_refused_snapshot_leaves_nothing_a_restart_takes_a_cluster_id_from()
    {
        var (_, handle) = Receive(5);
        _snapshots.Received(handle);
        _snapshots.DropUnclaimed(installed: null);

        _snapshots.Restarted(_storage.Reopen());

        Assert.False(_membership.Identity.Known);
        Assert.Empty(Directory.GetFiles(_storage.Snapshots.Directory));
    }

    [Fact]
    public void A_node_that_knows_its_cluster_id_keeps_none_beside_the_snapshots_it_receives()
    {
        Assert.True(_membership.Identity.TryAdopt(LeadersCluster));
        Receive(5);
        Assert.Empty(Directory.GetFiles(_storage.Snapshots.Directory, "*.cluster-id"));
    }
}
