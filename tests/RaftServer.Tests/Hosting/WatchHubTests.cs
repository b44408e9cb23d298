using RaftServer.Hosting;
using RaftServer.StateMachine;

namespace RaftServer.Tests.Hosting;

/// <summary>The window of history and its readers (<see cref="WatchHub"/>), without gRPC.</summary>
public sealed class WatchHubTests
{
    private static readonly Action<Action> Inline = a => a();

    private static KvEvent Put(string key, long revision, string value = "v") =>
        new(KvEventKind.Put, new KeyValueItem(key, System.Text.Encoding.UTF8.GetBytes(value), revision, revision, 1, 0));

    private static KvEvent Del(string key, long revision) => new(KvEventKind.Delete, new KeyValueItem(key, ReadOnlyMemory<byte>.Empty, 0, revision, 0, 0));

    private static void Append(WatchHub hub, long revision, params string[] keys) =>
        hub.Append(keys.Select(k => Put(k, revision)).ToArray(), revision);

    private static List<(string Key, long Revision)> ReadAll(Watcher w, int maxEvents = 1000, long maxBytes = 1 << 20)
    {
        var events = new List<WatchedEvent>();
        var r = w.Read(events, maxEvents, maxBytes);
        Assert.NotEqual(WatchReadStatus.Lost, r.Status);
        return events.Select(e => (e.Change.Item.Key, e.Revision)).ToList();
    }

    [Fact]
    public void A_watcher_reads_its_keys_changes_in_revision_order_from_its_start()
    {
        var hub = new WatchHub(16, schedule: Inline);
        hub.Reset(0);
        Append(hub, 2, "a");
        Append(hub, 3, "b/1");
        hub.Append([Del("a", 5), Put("b/2", 5)], 5);

        using var exact = hub.Open("a", prefix: false, startRevision: 1);
        Assert.Equal([("a", 2L), ("a", 5L)], ReadAll(exact));
        using var prefix = hub.Open("b/", prefix: true, startRevision: 3);
        Assert.Equal([("b/1", 3L), ("b/2", 5L)], ReadAll(prefix));
        using var late = hub.Open("b/", prefix: true, startRevision: 4);
        Assert.Equal([("b/2", 5L)], ReadAll(late));
        Assert.Equal(6, late.NextRevision);

        // Nothing new: idle; then the next change.
        Assert.Empty(ReadAll(prefix));
        Append(hub, 7, "b/3", "c");
        Assert.Equal([("b/3", 7L)], ReadAll(prefix));
        Assert.Equal(8, prefix.NextRevision);
        Assert.Empty(ReadAll(exact));
        Assert.Equal(8, exact.NextRevision); // read past revision 7, which did not touch "a"
    }

    [Fact]
    public void Start_revision_zero_means_after_the_current_revision()
    {
        var hub = new WatchHub(16, schedule: Inline);
        hub.Reset(10);
        Append(hub, 12, "k");
        using var w = hub.Open("k", false, 0);
        Assert.Equal(13, w.StartRevision);
        Assert.Empty(ReadAll(w));
        Append(hub, 14, "k");
        Assert.Equal([("k", 14L)], ReadAll(w));
    }

    [Fact]
    public void A_reply_never_splits_a_revision()
    {
        var hub = new WatchHub(64, schedule: Inline);
        hub.Reset(0);
        Append(hub, 2, "p/1");
        Append(hub, 3, "p/2", "p/3", "p/4");
        Append(hub, 4, "p/5");
        using var w = hub.Open("p/", true, 1);
        Assert.Equal([("p/1", 2L), ("p/2", 3L), ("p/3", 3L), ("p/4", 3L)], ReadAll(w, maxEvents: 2));
        Assert.Equal([("p/5", 4L)], ReadAll(w, maxEvents: 2));
    }

    [Fact]
    public void Old_revisions_leave_whole_when_the_window_is_full_and_a_start_before_them_is_compacted()
    {
        var hub = new WatchHub(4, schedule: Inline);
        hub.Reset(0);
        Append(hub, 2, "a", "b");
        Append(hub, 3, "c");
        Append(hub, 4, "d");
        Assert.Equal(0, hub.CompactedRevision);
        Append(hub, 5, "e"); // five events do not fit in four: revision 2 (both of its events) leaves
        Assert.Equal(2, hub.CompactedRevision);
        Assert.Equal(3, hub.Events);

        var e = Assert.Throws<WatchCompactedException>(() => hub.Open("a", false, 2));
        Assert.Equal(2, e.CompactedRevision);
        using var w = hub.Open("", true, 3);
        Assert.Equal([("c", 3L), ("d", 4L), ("e", 5L)], ReadAll(w));
    }

    [Fact]
    public void The_window_is_bounded_by_bytes_too()
    {
        var hub = new WatchHub(1024, maxBytes: 10_000, schedule: Inline);
        hub.Reset(0);
        for (var r = 1; r <= 100; r++) hub.Append([Put("k", r, new string('x', 1000))], r);
        Assert.True(hub.Events < 10, $"{hub.Events} events kept");
        Assert.Equal(100 - hub.Events, hub.CompactedRevision);
    }

    [Fact]
    public void A_watcher_that_falls_out_of_the_window_is_lost_with_the_compacted_revision()
    {
        var hub = new WatchHub(4, schedule: Inline);
        hub.Reset(0);
        using var w = hub.Open("k", false, 1);
        Append(hub, 2, "k");
        Assert.Equal([("k", 2L)], ReadAll(w));
        for (var r = 3; r <= 10; r++) Append(hub, r, "k");
        var events = new List<WatchedEvent>();
        var read = w.Read(events);
        Assert.Equal(WatchReadStatus.Lost, read.Status);
        Assert.Equal(6, read.CompactedRevision);
        Assert.Empty(events);

        // A watcher that keeps reading is never lost, however small the window.
        using var other = hub.Open("other", false, 7);
        Assert.Empty(ReadAll(other));
        for (var r = 11; r <= 20; r++)
        {
            Append(hub, r, "k");
            Assert.Empty(ReadAll(other));
        }
        Assert.Equal(21, other.NextRevision);
        // One that stops reading loses the revisions that left, even of keys it does not watch:
        // the window keeps no per-key history.
        for (var r = 21; r <= 30; r++) Append(hub, r, "k");
        Assert.Equal(WatchReadStatus.Lost, other.Read(events).Status);
    }

    [Fact]
    public void A_reset_loses_the_watchers_that_needed_what_it_skipped_and_keeps_the_others()
    {
        var hub = new WatchHub(16, schedule: Inline);
        hub.Reset(0);
        Append(hub, 2, "k");
        using var behind = hub.Open("k", false, 3);
        using var ahead = hub.Open("k", false, 60);
        hub.Reset(50); // a leader's snapshot at revision 50 was installed
        var events = new List<WatchedEvent>();
        Assert.Equal(new WatchRead(WatchReadStatus.Lost, 50), behind.Read(events));
        Assert.Empty(ReadAll(ahead));
        Append(hub, 60, "k");
        Assert.Equal([("k", 60L)], ReadAll(ahead));
        Assert.Throws<WatchCompactedException>(() => hub.Open("k", false, 50));
    }

    [Fact]
    public void An_entry_larger_than_the_window_compacts_its_revision()
    {
        var hub = new WatchHub(4, schedule: Inline);
        hub.Reset(0);
        using var w = hub.Open("", true, 1);
        Append(hub, 2, "a", "b", "c", "d", "e");
        var events = new List<WatchedEvent>();
        Assert.Equal(new WatchRead(WatchReadStatus.Lost, 2), w.Read(events));
    }

    [Fact]
    public void Publish_completes_the_changed_task_once_per_batch_and_only_after_an_append()
    {
        var scheduled = new List<Action>();
        var hub = new WatchHub(16, schedule: scheduled.Add);
        var before = hub.Changed;
        hub.Publish();
        Assert.Empty(scheduled);
        Append(hub, 2, "a");
        Append(hub, 3, "b");
        hub.Publish();
        hub.Publish();
        Assert.Single(scheduled);
        Assert.False(before.IsCompleted);
        scheduled[0]();
        Assert.True(before.IsCompleted);
        Assert.False(hub.Changed.IsCompleted);
    }

    [Fact]
    public void CancelAll_ends_every_watcher_with_its_reason()
    {
        var hub = new WatchHub(16, schedule: Inline);
        using var a = hub.Open("a", false, 1);
        using var b = hub.Open("b", true, 1);
        Assert.Equal(2, hub.Watchers);
        hub.CancelAll(WatchEnd.NodeStopping, "the node is suspended");
        Assert.True(a.Ended.IsCancellationRequested);
        Assert.True(b.Ended.IsCancellationRequested);
        Assert.Equal(WatchEnd.NodeStopping, a.EndReason);
        Assert.Equal("the node is suspended", b.EndDetail);
        a.Dispose();
        b.Dispose();
        Assert.Equal(0, hub.Watchers);
    }

    [Fact]
    public void A_watcher_stuck_sending_while_its_revisions_leave_is_ended_as_too_slow()
    {
        var scheduled = new Queue<Action>();
        var hub = new WatchHub(4, schedule: scheduled.Enqueue);
        using var stuck = hub.Open("k", false, 1);
        using var reading = hub.Open("k", false, 1);
        Append(hub, 2, "k");
        stuck.Sending = true; // its client stopped reading: its send never returns
        for (var r = 3; r <= 10; r++)
        {
            Append(hub, r, "k");
            ReadAll(reading);
        }
        hub.Publish();
        while (scheduled.TryDequeue(out var action)) action();
        Assert.True(stuck.Ended.IsCancellationRequested);
        Assert.Equal(WatchEnd.TooSlow, stuck.EndReason);
        Assert.False(reading.Ended.IsCancellationRequested);
    }

    [Fact]
    public void At_most_MaxWatchers_watch_at_once()
    {
        var hub = new WatchHub(16, maxWatchers: 2, schedule: Inline);
        using var a = hub.Open("a", false, 1);
        var b = hub.Open("b", false, 1);
        Assert.Throws<InvalidOperationException>(() => hub.Open("c", false, 1));
        b.Dispose();
        using var c = hub.Open("c", false, 1);
        Assert.Equal(2, hub.Watchers);
    }

    /// <summary>
    /// The loop thread appends while reader threads read at their own pace: each reader sees every
    /// revision after its start exactly once and in order, or is told it lost them; never a gap.
    /// </summary>
    [Fact]
    public async Task Readers_on_other_threads_see_every_revision_in_order_or_are_told_they_lost_it()
    {
        const int revisions = 200_000;
        var hub = new WatchHub(1024, schedule: a => ThreadPool.UnsafeQueueUserWorkItem(_ => a(), null));
        hub.Reset(0);
        var progress = new long[4];
        // Opened before the writer starts: a reader task the pool starts late must not begin behind the window.
        var watchers = Enumerable.Range(0, 4).Select(_ => hub.Open("k", false, 1)).ToArray();
        var readers = Enumerable.Range(0, 4).Select(i => Task.Run(async () =>
        {
            using var w = watchers[i];
            var events = new List<WatchedEvent>();
            long expected = 1, lost = 0;
            while (expected <= revisions)
            {
                var changed = w.Changed;
                var r = w.Read(events, 100);
                if (r.Status == WatchReadStatus.Lost)
                {
                    Assert.True(r.CompactedRevision >= expected, $"lost at {r.CompactedRevision} while expecting {expected}");
                    lost++;
                    return (lost, expected);
                }
                foreach (var e in events)
                {
                    // Revision r carries r % 3 + 1 events: all of them, in order.
                    Assert.Equal(expected, e.Revision);
                    Assert.Equal($"{e.Revision}/{e.Change.Item.Version}", System.Text.Encoding.UTF8.GetString(e.Change.Item.Value.Span));
                    if (e.Change.Item.Version == e.Revision % 3 + 1) expected++;
                }
                Volatile.Write(ref progress[i], expected);
                events.Clear();
                if (i % 2 == 1) Thread.SpinWait(2_000); // slow readers
                if (r.Status == WatchReadStatus.Idle) await Task.WhenAny(changed, Task.Delay(10));
            }
            return (lost, expected);
        })).ToArray();

        for (long r = 1; r <= revisions; r++)
        {
            var n = (int)(r % 3 + 1);
            var changes = new KvEvent[n];
            for (var v = 0; v < n; v++)
                changes[v] = new KvEvent(KvEventKind.Put, new KeyValueItem("k", System.Text.Encoding.UTF8.GetBytes($"{r}/{v + 1}"), r, r, v + 1, 0));
            hub.Append(changes, r);
            if (r % 16 == 0) hub.Publish();
            // Reader 0 is not slowed down: the writer lets it keep within half the window (for a
            // while), so at least one reader reads everything; the slow ones may fall out.
            var waited = System.Diagnostics.Stopwatch.StartNew();
            while (r - Volatile.Read(ref progress[0]) > 150 && readers[0].Status != TaskStatus.RanToCompletion && waited.ElapsedMilliseconds < 2_000)
                Thread.Yield();
        }
        hub.Publish();
        var results = await Task.WhenAll(readers).WaitAsync(TimeSpan.FromSeconds(120));
        foreach (var (lost, expected) in results)
            if (lost == 0) Assert.Equal(revisions + 1, expected);
        Assert.Equal(0, results[0].lost); // the reader the writer waited for kept up
    }
}
