using RaftServer.Cluster;
using RaftServer.Consensus;
using RaftServer.StateMachine;
using RaftServer.Storage;

namespace RaftServer.Tests.Storage;

/// <summary>
/// The cluster id an upload's sender named, kept beside the received snapshot
/// (<c>&lt;snapshot&gt;.cluster-id</c>): durable with the snapshot, found with it, gone with it.
/// </summary>
public sealed class SnapshotClusterIdFileTests : IDisposable
{
    private const ulong SendersCluster = 0x0123_4567_89ab_cdef;
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "raftps-tests", "snapcid-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly ListLogger _logger = new();
    private readonly SnapshotStore _leader;
    private readonly SnapshotStore _follower;

    public SnapshotClusterIdFileTests()
    {
        _leader = SnapshotStore.Open(Path.Combine(_dir, "leader"), _logger);
        _follower = SnapshotStore.Open(Path.Combine(_dir, "follower"), _logger);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private SnapshotFile Receive(long index, ulong clusterId)
    {
        var kv = new KvStore();
        kv.Apply(new Entry(index, 2, EntryKind.Command, Command.Encode(CommandOp.Set, 1, 1, 1, "k", new byte[10])));
        var image = kv.CaptureImage();
        var sent = _leader.Save(new SnapshotMetadata(index, 2, [1, 2, 3]), s => KvSnapshotCodec.Write(image, s));
        using var upload = _follower.BeginUpload(sent.Meta, clusterId);
        upload.Write(File.ReadAllBytes(sent.Path));
        return upload.Complete();
    }

    private string[] FollowerFiles() => Directory.GetFiles(_follower.Directory).Select(Path.GetFileName).Order().ToArray()!;

    [Fact]
    public void An_upload_that_names_a_cluster_id_keeps_it_beside_the_snapshot_and_recovery_finds_it()
    {
        var received = Receive(7, SendersCluster);

        Assert.Equal(SendersCluster, received.ClusterId);
        Assert.Equal([Path.GetFileName(received.Path), Path.GetFileName(received.Path) + ".cluster-id"], FollowerFiles());
        Assert.Equal("0123456789abcdef\n", File.ReadAllText(received.Path + ".cluster-id"));
        Assert.Equal(SendersCluster, SnapshotStore.Open(_follower.Directory, _logger).NewestValid()!.ClusterId);
    }

    [Fact]
    public void An_upload_without_a_cluster_id_and_a_saved_snapshot_have_none()
    {
        var received = Receive(7, ClusterIdentity.Unknown);
        Assert.Equal(ClusterIdentity.Unknown, received.ClusterId);
        Assert.Equal([Path.GetFileName(received.Path)], FollowerFiles());
        Assert.Equal(ClusterIdentity.Unknown, _follower.NewestValid()!.ClusterId);
        Assert.Equal(ClusterIdentity.Unknown, _leader.NewestValid()!.ClusterId);
    }

    [Fact]
    public void Deleting_or_pruning_a_snapshot_deletes_its_cluster_id_file()
    {
        var first = Receive(5, SendersCluster);
        Receive(6, SendersCluster);
        var third = Receive(7, SendersCluster);
        var newest = Receive(8, SendersCluster);

        _follower.Prune(third); // keeps 7 and the one before it (6)
        Assert.False(File.Exists(first.Path + ".cluster-id"));
        _follower.Delete(newest);
        Assert.Equal(["00000000000000000006-00000000000000000002.snap", "00000000000000000006-00000000000000000002.snap.cluster-id",
            "00000000000000000007-00000000000000000002.snap", "00000000000000000007-00000000000000000002.snap.cluster-id"], FollowerFiles());
    }

    [Fact]
    public void A_cluster_id_file_whose_snapshot_is_gone_is_removed_when_the_store_opens()
    {
        var received = Receive(7, SendersCluster);
        File.Delete(received.Path); // as a crash between the two deletions leaves it
        Assert.Equal([Path.GetFileName(received.Path) + ".cluster-id"], FollowerFiles());

        var reopened = SnapshotStore.Open(_follower.Directory, _logger);
        Assert.Empty(FollowerFiles());
        Assert.Null(reopened.NewestValid());
    }

    [Fact]
    public void A_damaged_cluster_id_file_is_ignored_and_the_snapshot_still_used()
    {
        var received = Receive(7, SendersCluster);
        File.WriteAllText(received.Path + ".cluster-id", "not an id");

        var found = SnapshotStore.Open(_follower.Directory, _logger).NewestValid();

        Assert.Equal(received.Path, found!.Path);
        Assert.Equal(ClusterIdentity.Unknown, found.ClusterId);
        Assert.Contains(_logger.Warnings, w => w.Contains(".cluster-id: expected a cluster id") && w.Contains("not an id"));
    }

    [Fact]
    public void A_second_upload_of_a_snapshot_the_node_has_changes_neither_file()
    {
        var first = Receive(7, SendersCluster);
        var again = Receive(7, 0x1111_2222_3333_4444);

        Assert.Equal(first.Path, again.Path);
        Assert.Equal(SendersCluster, _follower.NewestValid()!.ClusterId);
        Assert.Equal([Path.GetFileName(first.Path), Path.GetFileName(first.Path) + ".cluster-id"], FollowerFiles());
    }

    [Fact]
    public void An_upload_of_a_snapshot_the_node_took_itself_leaves_no_cluster_id_beside_it()
    {
        var own = _follower.Save(new SnapshotMetadata(7, 2, [1, 2, 3]), s => KvSnapshotCodec.Write(new KvStore().CaptureImage(), s));
        var received = Receive(7, SendersCluster);

        Assert.Equal(own.Path, received.Path);
        Assert.Equal([Path.GetFileName(own.Path)], FollowerFiles());
    }
}
