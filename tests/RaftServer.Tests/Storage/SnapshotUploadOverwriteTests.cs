using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using RaftServer.Consensus;
using RaftServer.StateMachine;
using RaftServer.Storage;

namespace RaftServer.Tests.Storage;

/// <summary>An upload never replaces a snapshot file the node has (docs/security.md, "Snapshot uploads").</summary>
public sealed class SnapshotUploadOverwriteTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "raftps-tests", "snap-ow-" + Guid.NewGuid().ToString("N")[..8]);
    private static readonly int[] Members = [1, 2, 3];

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private static SnapshotFile SaveStore(SnapshotStore store, long index, long term, string value)
    {
        var kv = new KvStore();
        for (var i = 1; i <= index; i++)
            kv.Apply(new Entry(i, term, EntryKind.Command, Command.Encode(CommandOp.Set, 1_000 + i, 42, (ulong)i, "k", Encoding.UTF8.GetBytes(value))));
        var image = kv.CaptureImage();
        return store.Save(new SnapshotMetadata(index, term, Members), s => KvSnapshotCodec.Write(image, s));
    }

    [Fact]
    public void An_upload_at_an_existing_index_and_term_keeps_the_existing_file()
    {
        var own = SnapshotStore.Open(Path.Combine(_dir, "own"), NullLogger.Instance);
        var other = SnapshotStore.Open(Path.Combine(_dir, "other"), NullLogger.Instance);
        var mine = SaveStore(own, 10, 3, "mine");
        var before = File.ReadAllBytes(mine.Path);
        // A well-formed file for the same (index, term) with other contents: forged, or broken.
        var forged = SaveStore(other, 10, 3, "forged");
        Assert.NotEqual(before, File.ReadAllBytes(forged.Path));

        using var upload = own.BeginUpload(forged.Meta);
        upload.Write(File.ReadAllBytes(forged.Path));
        var result = upload.Complete();

        Assert.True(upload.KeptExisting);
        Assert.Equal(mine.Path, result.Path);
        Assert.Equal(before, File.ReadAllBytes(mine.Path));
        Assert.True(own.Load(result).TryGet("k", out var value));
        Assert.Equal("mine", Encoding.UTF8.GetString(value.Span));
        Assert.Empty(Directory.GetFiles(own.Directory, "*.tmp"));
    }

    [Fact]
    public void An_upload_at_a_new_index_is_installed()
    {
        var own = SnapshotStore.Open(Path.Combine(_dir, "own"), NullLogger.Instance);
        var other = SnapshotStore.Open(Path.Combine(_dir, "other"), NullLogger.Instance);
        SaveStore(own, 10, 3, "mine");
        var sent = SaveStore(other, 12, 3, "newer");

        using var upload = own.BeginUpload(sent.Meta);
        upload.Write(File.ReadAllBytes(sent.Path));
        var result = upload.Complete();

        Assert.False(upload.KeptExisting);
        Assert.Equal(File.ReadAllBytes(sent.Path), File.ReadAllBytes(result.Path));
    }
}
