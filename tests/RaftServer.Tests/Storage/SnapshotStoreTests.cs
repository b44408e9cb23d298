using System.Diagnostics;
using System.Text;
using RaftServer.Consensus;
using RaftServer.StateMachine;
using RaftServer.Storage;
using Xunit.Abstractions;

namespace RaftServer.Tests.Storage;

public sealed class SnapshotStoreTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "raftps-tests", "snap-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly ListLogger _logger = new();
    private static readonly int[] Members = [1, 2, 3];

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private SnapshotStore Open(string? dir = null) => SnapshotStore.Open(dir ?? _dir, _logger);

    private static SnapshotMetadata Meta(long index, long term = 2) => new(index, term, Members);

    /// <summary>A store at <paramref name="index"/> with a few keys and a client session.</summary>
    private static KvStore StoreAt(long index, int keys = 5)
    {
        var kv = new KvStore();
        for (var i = 1; i <= index; i++)
        {
            var key = $"k{i % keys}";
            kv.Apply(new Entry(i, 2, EntryKind.Command, Command.Encode(CommandOp.Set, 1_000 + i, 42, (ulong)i, key, Encoding.UTF8.GetBytes($"value {i}"))));
        }
        return kv;
    }

    private static byte[] Encode(KvStore kv)
    {
        var ms = new MemoryStream();
        KvSnapshotCodec.Write(kv.CaptureImage(), ms);
        return ms.ToArray();
    }

    private static SnapshotFile SaveStore(SnapshotStore store, long index, long term = 2)
    {
        var image = StoreAt(index).CaptureImage();
        return store.Save(Meta(index, term), s => KvSnapshotCodec.Write(image, s));
    }

    private string[] Files(string pattern = "*") => Directory.GetFiles(_dir, pattern).Select(Path.GetFileName).Order().ToArray()!;

    [Fact]
    public void A_saved_snapshot_is_found_and_loads_into_the_same_state()
    {
        var store = Open();
        Assert.Null(store.NewestValid());
        Assert.Equal(0, store.SizeBytes);

        var saved = SaveStore(store, 12, term: 3);
        Assert.Equal("00000000000000000012-00000000000000000003.snap", Path.GetFileName(saved.Path));
        Assert.Equal(new FileInfo(saved.Path).Length, saved.Length);
        Assert.Equal(saved.Length, store.SizeBytes);
        Assert.Equal(["00000000000000000012-00000000000000000003.snap"], Files());

        var found = Open().NewestValid();
        Assert.NotNull(found);
        Assert.Equal((12L, 3L), (found.Meta.Index, found.Meta.Term));
        Assert.Equal(Members, found.Meta.Members);
        Assert.Equal(saved.Path, found.Path);

        var loaded = store.Load(found);
        Assert.Equal(12, loaded.AppliedIndex);
        Assert.Equal(Encode(StoreAt(12)), Encode(loaded));
        Assert.Empty(_logger.Warnings);
    }

    [Fact]
    public void Snapshots_live_in_snap_beside_the_log()
    {
        using var data = DataDirectory.Open(_dir);
        Assert.Equal(Path.Combine(data.Path, "snap"), data.SnapPath);
        var store = SnapshotStore.Open(data.SnapPath, _logger);
        Assert.True(Directory.Exists(data.SnapPath));
        Assert.StartsWith(data.SnapPath, SaveStore(store, 1).Path);
    }

    [Fact]
    public void The_file_is_magic_header_body_and_a_checksum_of_everything_before_it()
    {
        var store = Open();
        var saved = SaveStore(store, 4);
        var bytes = File.ReadAllBytes(saved.Path);
        Assert.Equal("RAFTSNP3", Encoding.ASCII.GetString(bytes, 0, 8));
        Assert.Equal(4, BitConverter.ToInt64(bytes, 8));
        Assert.Equal(2, BitConverter.ToInt64(bytes, 16));
        var configLength = BitConverter.ToInt32(bytes, 24);
        Assert.Equal(saved.Meta.Configuration, Configuration.Decode(bytes.AsSpan(28, configLength)));
        Assert.Equal([1, 2, 3], saved.Meta.Members);
        var bodyAt = 28 + configLength + 8;
        var bodyLength = BitConverter.ToInt64(bytes, 28 + configLength);
        Assert.Equal(Encode(StoreAt(4)), bytes[bodyAt..(bodyAt + (int)bodyLength)]);
        Assert.Equal(bodyAt + bodyLength + 8, bytes.Length);
        Assert.Equal(System.IO.Hashing.XxHash3.HashToUInt64(bytes.AsSpan(0, bytes.Length - 8)), BitConverter.ToUInt64(bytes, bytes.Length - 8));
    }

    [Fact]
    public void A_file_of_the_format_before_with_an_xxhash64_checksum_is_read_and_verified()
    {
        // RAFTSNP2: the layout of today's files, the checksum XxHash64.
        var store = Open();
        var path = SaveStore(store, 4).Path;
        var bytes = File.ReadAllBytes(path);
        "RAFTSNP2"u8.CopyTo(bytes);
        BitConverter.TryWriteBytes(bytes.AsSpan(bytes.Length - 8), System.IO.Hashing.XxHash64.HashToUInt64(bytes.AsSpan(0, bytes.Length - 8)));
        File.WriteAllBytes(path, bytes);

        var found = Open().NewestValid()!;
        Assert.Equal(4, found.Meta.Index);
        Assert.Equal(4, Open().Load(found).AppliedIndex);

        // Its checksum is XxHash64's: the same bytes with an XxHash3 checksum do not verify.
        BitConverter.TryWriteBytes(bytes.AsSpan(bytes.Length - 8), System.IO.Hashing.XxHash3.HashToUInt64(bytes.AsSpan(0, bytes.Length - 8)));
        File.WriteAllBytes(path, bytes);
        Assert.Null(Open().NewestValid());
    }

    [Fact]
    public void A_file_written_before_snapshots_carried_addresses_is_read_with_its_members_as_voters()
    {
        // RAFTSNP1: magic, index, term, member count, member ids, body length, body, checksum.
        var body = Encode(StoreAt(4));
        var file = new List<byte>();
        file.AddRange("RAFTSNP1"u8.ToArray());
        file.AddRange(BitConverter.GetBytes(4L));
        file.AddRange(BitConverter.GetBytes(2L));
        file.AddRange(BitConverter.GetBytes(3));
        foreach (var id in new[] { 1, 2, 3 }) file.AddRange(BitConverter.GetBytes(id));
        file.AddRange(BitConverter.GetBytes((long)body.Length));
        file.AddRange(body);
        file.AddRange(BitConverter.GetBytes(System.IO.Hashing.XxHash64.HashToUInt64(file.ToArray())));
        var store = Open();
        File.WriteAllBytes(Path.Combine(store.Directory, $"{4:D20}-{2:D20}.snap"), file.ToArray());

        var found = Open().NewestValid()!;
        Assert.Equal(Configuration.FromVoters([1, 2, 3]), found.Meta.Configuration);
        Assert.Equal(4, Open().Load(found).AppliedIndex);
    }

    [Fact]
    public void The_newest_of_several_snapshots_is_chosen()
    {
        var store = Open();
        SaveStore(store, 30);
        SaveStore(store, 100, term: 4);
        SaveStore(store, 7);
        var newest = Open().NewestValid();
        Assert.Equal((100L, 4L), (newest!.Meta.Index, newest.Meta.Term));
    }

    public static TheoryData<string> Damages => ["flip-body", "flip-header", "flip-trailer", "truncate", "extend", "empty", "wrong-header", "bad-magic"];

    [Theory]
    [MemberData(nameof(Damages))]
    public void A_damaged_newest_snapshot_is_set_aside_and_the_older_one_used(string damage)
    {
        var store = Open();
        var older = SaveStore(store, 10);
        var newer = SaveStore(store, 20);
        var bytes = File.ReadAllBytes(newer.Path);
        switch (damage)
        {
            case "flip-body": bytes[bytes.Length / 2] ^= 0x01; break;
            case "flip-header": bytes[9] ^= 0x80; break;
            case "flip-trailer": bytes[^1] ^= 0x01; break;
            case "truncate": bytes = bytes[..^20]; break;
            case "extend": bytes = [.. bytes, 0]; break;
            case "empty": bytes = []; break;
            case "bad-magic": bytes[0] = (byte)'X'; break;
            case "wrong-header":
                // A complete, self-consistent file under another snapshot's name.
                bytes = File.ReadAllBytes(older.Path);
                break;
        }
        File.WriteAllBytes(newer.Path, bytes);

        var found = Open().NewestValid();
        Assert.Equal(older.Path, found!.Path);
        var warning = Assert.Single(_logger.Warnings);
        Assert.Contains(newer.Path, warning);
        Assert.Contains("damaged", warning);
        Assert.False(File.Exists(newer.Path));
        Assert.True(File.Exists(newer.Path + ".corrupt"));
        Assert.Equal(older.Length, store.SizeBytes); // corrupt files do not count

        Assert.Equal(older.Path, store.NewestValid()!.Path); // the corrupt file is not tried again
        Assert.Single(_logger.Warnings);
        Assert.Equal(10, store.Load(found).AppliedIndex);
    }

    [Fact]
    public void With_every_snapshot_damaged_there_is_none()
    {
        var store = Open();
        foreach (var index in new[] { 5L, 6L })
        {
            var f = SaveStore(store, index);
            var bytes = File.ReadAllBytes(f.Path);
            bytes[^9] ^= 0xFF;
            File.WriteAllBytes(f.Path, bytes);
        }
        Assert.Null(store.NewestValid());
        Assert.Equal(2, _logger.Warnings.Count());
    }

    [Fact]
    public void Load_names_the_file_and_the_problem()
    {
        var store = Open();
        var saved = SaveStore(store, 9);

        var wrongMeta = saved with { Meta = Meta(9, term: 5) };
        var e = Assert.Throws<InvalidDataException>(() => store.Load(wrongMeta));
        Assert.Contains(saved.Path, e.Message);
        Assert.Contains("expected index 9 term 5", e.Message);

        var bytes = File.ReadAllBytes(saved.Path);
        bytes[^30] ^= 0x04; // inside the last value
        File.WriteAllBytes(saved.Path, bytes);
        e = Assert.Throws<InvalidDataException>(() => store.Load(saved));
        Assert.Contains(saved.Path, e.Message);
        Assert.Contains("checksum mismatch", e.Message);

        File.WriteAllBytes(saved.Path, bytes[..^100]);
        e = Assert.Throws<InvalidDataException>(() => store.Load(saved));
        Assert.Contains(saved.Path, e.Message);

        // Written wrong rather than damaged on disk: the checksum is right, the body is not a store.
        var junk = store.Save(Meta(11), s => s.Write("not a state machine"u8));
        e = Assert.Throws<InvalidDataException>(() => store.Load(junk));
        Assert.Contains(junk.Path, e.Message);
        Assert.Contains("checksum matches but the body is unreadable", e.Message);

        // A body at another index than the header's.
        var image = StoreAt(3).CaptureImage();
        var mislabelled = store.Save(Meta(4), s => KvSnapshotCodec.Write(image, s));
        Assert.Contains("at index 3, the header says 4", Assert.Throws<InvalidDataException>(() => store.Load(mislabelled)).Message);
    }

    [Fact]
    public void A_failed_save_leaves_nothing_behind()
    {
        var store = Open();
        var good = SaveStore(store, 3);
        var e = Assert.Throws<IOException>(() => store.Save(Meta(8), s =>
        {
            s.Write(new byte[1000]);
            Assert.Single(Directory.GetFiles(_dir, "*.tmp"));
            throw new IOException("disk full");
        }));
        Assert.Equal("disk full", e.Message);
        Assert.Equal([Path.GetFileName(good.Path)], Files());
        Assert.Equal(good.Path, store.NewestValid()!.Path);
    }

    [Fact]
    public void A_save_cut_by_a_crash_leaves_only_a_temporary_file_which_is_ignored_and_removed_on_open()
    {
        var store = Open();
        var good = SaveStore(store, 3);
        var cut = SaveStore(store, 8);
        // What a crash before the rename leaves: the new snapshot, partly written, under a temp name.
        var temp = cut.Path + ".5f0c.save.tmp";
        File.WriteAllBytes(temp, File.ReadAllBytes(cut.Path)[..200]);
        File.Delete(cut.Path);

        Assert.Equal(good.Path, store.NewestValid()!.Path);
        Assert.Empty(_logger.Warnings);
        var reopened = Open();
        Assert.Contains(_logger.Warnings, w => w.Contains(temp) && w.Contains("incomplete snapshot"));
        Assert.Equal([Path.GetFileName(good.Path)], Files());
        Assert.Equal(good.Path, reopened.NewestValid()!.Path);
    }

    [Fact]
    public void An_upload_received_in_chunks_of_any_size_becomes_the_same_file()
    {
        var leader = Open(Path.Combine(_dir, "leader"));
        var follower = Open(Path.Combine(_dir, "follower"));
        var sent = SaveStore(leader, 50);

        var random = new Random(3);
        using var upload = follower.BeginUpload(sent.Meta);
        using (var source = leader.OpenRead(sent))
        {
            var buffer = new byte[10_000];
            int n;
            while ((n = source.Read(buffer, 0, random.Next(1, 20) == 1 ? random.Next(1, 8) : random.Next(1, buffer.Length))) > 0)
                upload.Write(buffer.AsSpan(0, n));
        }
        Assert.Equal(sent.Length, upload.Length);
        var received = upload.Complete();

        Assert.Equal(File.ReadAllBytes(sent.Path), File.ReadAllBytes(received.Path));
        Assert.Equal(Path.GetFileName(sent.Path), Path.GetFileName(received.Path));
        Assert.Equal(received.Path, follower.NewestValid()!.Path);
        Assert.Equal(Encode(StoreAt(50)), Encode(follower.Load(received)));
        Assert.Empty(Directory.GetFiles(follower.Directory, "*.tmp"));
    }

    public static TheoryData<string> UploadDamages => ["flip", "truncate", "extra", "other-meta", "too-short", "nothing"];

    [Theory]
    [MemberData(nameof(UploadDamages))]
    public void A_damaged_or_unannounced_upload_is_refused_and_its_file_deleted(string damage)
    {
        var leader = Open(Path.Combine(_dir, "leader"));
        var follower = Open(Path.Combine(_dir, "follower"));
        var sent = SaveStore(leader, 20);
        var bytes = File.ReadAllBytes(sent.Path);
        var announced = sent.Meta;
        switch (damage)
        {
            case "flip": bytes[bytes.Length / 3] ^= 0x10; break;
            case "truncate": bytes = bytes[..^1]; break;
            case "extra": bytes = [.. bytes, .. new byte[5]]; break;
            case "other-meta": announced = new SnapshotMetadata(20, 2, [1, 2, 3, 4]); break;
            case "too-short": bytes = bytes[..20]; break;
            case "nothing": bytes = []; break;
        }

        var upload = follower.BeginUpload(announced);
        upload.Write(bytes);
        var e = Assert.Throws<InvalidDataException>(() => upload.Complete());
        Assert.Contains("snapshot upload (index 20 term 2", e.Message);
        upload.Dispose();
        Assert.Empty(Directory.GetFiles(follower.Directory));
        Assert.Null(follower.NewestValid());
        Assert.Throws<ObjectDisposedException>(() => upload.Write([1]));
    }

    [Fact]
    public void An_abandoned_upload_leaves_nothing()
    {
        var store = Open();
        using (var upload = store.BeginUpload(Meta(5)))
        {
            upload.Write(new byte[4096]);
            Assert.Single(Directory.GetFiles(_dir, "*.tmp"));
        }
        Assert.Empty(Directory.GetFiles(_dir));
    }

    [Fact]
    public void Prune_keeps_the_given_snapshot_and_the_one_before_it_and_leaves_newer_ones()
    {
        var store = Open();
        var files = new[] { 10L, 20L, 30L, 40L, 50L }.Select(i => SaveStore(store, i)).ToArray();
        File.WriteAllText(Path.Combine(_dir, "00000000000000000060-00000000000000000002.snap.0123.upload.tmp"), "left by a crash");
        using var inProgress = store.BeginUpload(Meta(70));
        inProgress.Write(File.ReadAllBytes(files[0].Path)[..100]);

        store.Prune(files[3]);
        Assert.Equal(new[] { files[2], files[3], files[4] }.Select(f => Path.GetFileName(f.Path)), Files("*.snap"));
        Assert.Single(Directory.GetFiles(_dir, "*.tmp")); // the upload in progress, not the leftover
        Assert.Equal(files[2].Length + files[3].Length + files[4].Length, store.SizeBytes);

        store.Prune(files[4]);
        Assert.Equal(new[] { files[3], files[4] }.Select(f => Path.GetFileName(f.Path)), Files("*.snap"));
        store.Prune(files[4]);
        Assert.Equal(2, Files("*.snap").Length);
    }

    [Fact]
    public async Task Pruning_in_the_background_takes_old_snapshots_out_at_once_and_frees_their_space_after()
    {
        var store = Open();
        var files = new[] { 10L, 20L, 30L, 40L }.Select(i => SaveStore(store, i)).ToArray();
        var expected = File.ReadAllBytes(files[0].Path);
        using var stream = store.OpenRead(files[0]);

        var freeing = store.PruneInBackground(files[3]);
        // Before the space is freed, the store already holds only the kept snapshot and the one before it.
        Assert.Equal(new[] { files[2], files[3] }.Select(f => Path.GetFileName(f.Path)), Files("*.snap"));
        Assert.Equal(files[2].Length + files[3].Length, store.SizeBytes);
        Assert.Equal(files[3].Path, store.NewestValid()!.Path);

        await freeing.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(new[] { files[2], files[3] }.Select(f => Path.GetFileName(f.Path)), Files());
        // A transfer of a discarded snapshot still reads all of it.
        var all = new MemoryStream();
        stream.CopyTo(all);
        Assert.Equal(expected, all.ToArray());
    }

    [Fact]
    public void A_discarded_snapshot_left_behind_is_removed_by_the_next_prune_and_at_open()
    {
        var store = Open();
        SaveStore(store, 10);
        var keep = SaveStore(store, 20);
        var leftover = Path.Combine(_dir, "00000000000000000005-00000000000000000002.snap.0123.discarded");
        File.WriteAllText(leftover, "a deletion that failed, or a crash before it");
        store.Prune(keep);
        Assert.False(File.Exists(leftover));

        File.WriteAllText(leftover, "again");
        Open();
        Assert.False(File.Exists(leftover));
        Assert.Equal(2, Files("*.snap").Length);
    }

    /// <summary>A store of <paramref name="keys"/> values of 1 MiB: its snapshot spans several write-behind chunks.</summary>
    private static KvStore LargeStore(int keys = 3)
    {
        var kv = new KvStore();
        for (var i = 1; i <= keys; i++)
            kv.Apply(new Entry(i, 2, EntryKind.Command, Command.Encode(CommandOp.Set, 1_000 + i, 42, (ulong)i, $"k{i}", new byte[1 << 20])));
        return kv;
    }

    [Fact]
    public void A_snapshot_written_behind_in_chunks_loads_whole()
    {
        var store = Open();
        var kv = LargeStore();
        var image = kv.CaptureImage();
        var saved = store.Save(Meta(3), s => KvSnapshotCodec.Write(image, s));
        Assert.True(saved.Length > 3 * WriteBehind.DefaultChunkBytes);
        Assert.Equal(Encode(kv), Encode(store.Load(saved)));
    }

    [Fact]
    public void A_snapshot_whose_writeback_fails_is_not_saved()
    {
        var disk = new FaultyDisk();
        var store = SnapshotStore.Open(_dir, _logger, disk);
        disk.Fail(DiskStep.Writeback, FaultyDisk.EIO);
        var image = LargeStore().CaptureImage();
        var e = Assert.ThrowsAny<IOException>(() => store.Save(Meta(3), s => KvSnapshotCodec.Write(image, s)));
        Assert.Contains("Input/output error", e.Message);
        Assert.Equal(1, disk.Fired);
        Assert.Empty(Directory.GetFiles(_dir));
        Assert.Null(store.NewestValid());
    }

    [Fact]
    public void A_file_being_streamed_survives_being_pruned()
    {
        var store = Open();
        var first = SaveStore(store, 1);
        SaveStore(store, 2);
        var keep = SaveStore(store, 3);
        var expected = File.ReadAllBytes(first.Path);

        using var stream = store.OpenRead(first);
        var head = new byte[10];
        stream.ReadExactly(head);
        store.Prune(keep);
        Assert.False(File.Exists(first.Path));
        var rest = new MemoryStream();
        stream.CopyTo(rest);
        Assert.Equal(expected, head.Concat(rest.ToArray()).ToArray());
    }

    /// <summary>An upload on another thread, half received, while this one saves, prunes and
    /// looks for the newest snapshot, as the gRPC handler and the node loop do.</summary>
    [Fact]
    public async Task An_upload_runs_while_saves_and_prunes_go_on()
    {
        var leader = Open(Path.Combine(_dir, "leader"));
        var follower = Open(Path.Combine(_dir, "follower"));
        var sent = SaveStore(leader, 500);
        var bytes = File.ReadAllBytes(sent.Path);
        var pauseAt = bytes.Length / 2 / 7 * 7;
        Assert.True(pauseAt > 0);

        var halfway = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var loopDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var uploader = Task.Run(async () =>
        {
            using var upload = follower.BeginUpload(sent.Meta);
            for (var i = 0; i < bytes.Length; i += 7)
            {
                if (i == pauseAt) { halfway.SetResult(); await loopDone.Task; }
                upload.Write(bytes.AsSpan(i, Math.Min(7, bytes.Length - i)));
            }
            return upload.Complete();
        });

        await halfway.Task;
        SnapshotFile? last = null;
        for (var index = 1; index <= 20; index++)
        {
            last = SaveStore(follower, index);
            follower.Prune(last);
            Assert.Equal(last.Path, follower.NewestValid()!.Path);
        }
        Assert.Single(Directory.GetFiles(follower.Directory, "*.tmp")); // the upload's, spared by every Prune
        loopDone.SetResult();
        var received = await uploader;

        Assert.Equal(bytes, File.ReadAllBytes(received.Path));
        Assert.Equal(received.Path, follower.NewestValid()!.Path);
        follower.Prune(received);
        Assert.Equal([Path.GetFileName(last!.Path), Path.GetFileName(received.Path)], Directory.GetFiles(follower.Directory).Select(Path.GetFileName).Order());
    }

    /// <summary>Not a timed assertion: prints Save and Load throughput for 400,000 keys.</summary>
    [Fact]
    public void Save_and_load_throughput_for_400000_keys()
    {
        const int keys = 400_000;
        var kv = new KvStore();
        var value = Encoding.UTF8.GetBytes(new string('v', 32));
        for (var i = 1; i <= keys; i++)
            kv.Apply(new Entry(i, 1, EntryKind.Command, Command.Encode(CommandOp.Set, 1_000, 0, 0, $"user/{(i * 7919L) % keys:D8}", value)));
        var store = Open();

        var sw = Stopwatch.StartNew();
        var image = kv.CaptureImage();
        var capture = sw.Elapsed;
        sw.Restart();
        var saved = store.Save(Meta(keys), s => KvSnapshotCodec.Write(image, s));
        var save = sw.Elapsed;
        sw.Restart();
        var found = store.NewestValid()!;
        var verify = sw.Elapsed;
        sw.Restart();
        var loaded = store.Load(found);
        var load = sw.Elapsed;
        Assert.Equal(keys, loaded.Count);

        var mb = saved.Length / 1e6;
        output.WriteLine($"{keys} keys, file {mb:F1} MB: CaptureImage {capture.TotalMilliseconds:F1} ms; " +
            $"Save (encode, hash, fsync, rename) {save.TotalMilliseconds:F0} ms = {mb / save.TotalSeconds:F0} MB/s; " +
            $"NewestValid (verify) {verify.TotalMilliseconds:F0} ms = {mb / verify.TotalSeconds:F0} MB/s; Load {load.TotalMilliseconds:F0} ms = {mb / load.TotalSeconds:F0} MB/s");
    }
}
