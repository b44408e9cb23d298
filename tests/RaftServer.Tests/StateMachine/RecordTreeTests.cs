using System.Text;
using RaftServer.StateMachine;
using Xunit;
using Xunit.Abstractions;

namespace RaftServer.Tests.StateMachine;

/// <summary>
/// The store's B+tree against a plain sorted reference, under random inserts, replacements and
/// removals (splits, merges and borrowing at every level), with frozen views that must never
/// change afterwards. Randomised: each test prints its seed; set RECORDTREE_SEED to replay one.
/// </summary>
public sealed class RecordTreeTests(ITestOutputHelper output)
{
    private int Seed(int fallback)
    {
        var seed = Environment.GetEnvironmentVariable("RECORDTREE_SEED") is { } s ? int.Parse(s, System.Globalization.CultureInfo.InvariantCulture) : fallback;
        output.WriteLine($"seed {seed} (replay with RECORDTREE_SEED={seed})");
        return seed;
    }

    private static byte[] Record(string key, long version) =>
        KeyRecord.Create(Encoding.UTF8.GetBytes(key), Encoding.UTF8.GetBytes($"{key}={version}"), 1, version, version, 0);

    private static readonly IComparer<string> Ordinal = StringComparer.Ordinal;

    private static List<(string Key, long Version)> Contents(IEnumerable<byte[]> records) =>
        records.Select(r => (KeyRecord.KeyString(r), KeyRecord.Version(r))).ToList();

    private static List<(string Key, long Version)> Contents(SortedDictionary<string, long> reference) =>
        reference.Select(p => (p.Key, p.Value)).ToList();

    /// <summary>Pieces of the mixed keys: shared prefixes of several lengths, and characters whose UTF-8
    /// lead bytes are where <see cref="KeyOrder"/> differs from byte order (EE/EF against F0-F4), NUL and
    /// multi-byte ones, so nodes get prefixes that end inside a character and heads that tie.</summary>
    private static readonly string[] Prefixes = ["", "a", "/registry/pods/default/", "/registry/pods/kube-system/", "k/0000", "\uE000\uE000", "\U0001F600"];
    private static readonly string[] Characters = ["a", "b", "z", "0", "9", "/", "\0", "\u00E9", "\u4E2D", "\uE000", "\uFFFF", "\U0001F600", "\U00010000"];

    private static string MixedKey(Random random, int keySpace)
    {
        var r = new Random(random.Next(keySpace)); // keySpace distinct keys at most, so writes replace and remove too
        var key = new StringBuilder(Prefixes[r.Next(Prefixes.Length)]);
        for (var n = r.Next(7); n > 0; n--) key.Append(Characters[r.Next(Characters.Length)]);
        return key.ToString();
    }

    [Theory]
    [InlineData(200, 5_000, false)]
    [InlineData(3_000, 40_000, false)]
    [InlineData(20_000, 120_000, false)]
    [InlineData(300, 8_000, true)]
    [InlineData(5_000, 60_000, true)]
    public void Random_writes_match_a_sorted_dictionary_and_frozen_views_never_change(int keySpace, int operations, bool mixedKeys)
    {
        var seed = Seed(Environment.TickCount ^ keySpace);
        var random = new Random(seed);
        string NextKey() => mixedKeys ? MixedKey(random, keySpace) : $"k/{random.Next(keySpace):D6}";
        var tree = new RecordTree();
        var reference = new SortedDictionary<string, long>(Ordinal);
        var views = new List<(RecordTree.View View, List<(string, long)> Expected)>();
        for (var op = 1; op <= operations; op++)
        {
            // Phases that mostly add, then mostly remove, so the tree grows and shrinks through every level.
            var removing = op / (operations / 6) % 2 == 1;
            var key = NextKey();
            if (random.NextDouble() < (removing ? 0.7 : 0.2))
            {
                var removed = tree.Remove(Encoding.UTF8.GetBytes(key));
                Assert.Equal(reference.Remove(key), removed is not null);
            }
            else
            {
                var replaced = tree.Set(Record(key, op));
                Assert.Equal(reference.ContainsKey(key), replaced is not null);
                reference[key] = op;
            }
            Assert.Equal(reference.Count, tree.Count);
            if (op % 997 == 0)
            {
                var view = tree.Freeze();
                RecordTree.CheckInvariants(view);
                views.Add((view, Contents(reference)));
            }
            if (random.Next(mixedKeys ? 5 : 500) == 0)
            {
                var probe = NextKey();
                Assert.Equal(reference.TryGetValue(probe, out var v) ? v : -1, tree.Find(Encoding.UTF8.GetBytes(probe)) is { } r ? KeyRecord.Version(r) : -1);
                var cursor = tree.From(Encoding.UTF8.GetBytes(probe));
                var expected = reference.Keys.FirstOrDefault(k => string.CompareOrdinal(k, probe) >= 0);
                Assert.Equal(expected, cursor.MoveNext() ? KeyRecord.KeyString(cursor.Current) : null);
            }
        }
        RecordTree.CheckInvariants(tree.Current);
        Assert.Equal(Contents(reference), Contents(tree.Current.Records()));
        foreach (var (view, expected) in views)
        {
            RecordTree.CheckInvariants(view);
            Assert.Equal(expected, Contents(view.Records()));
        }
    }

    [Fact]
    public void A_cursor_starts_at_the_first_key_at_or_after_its_bound()
    {
        var seed = Seed(Environment.TickCount);
        var random = new Random(seed);
        var tree = new RecordTree();
        var keys = new SortedSet<string>(Ordinal);
        for (var i = 0; i < 5_000; i++)
        {
            var key = $"{(char)('a' + random.Next(3))}/{random.Next(100_000)}";
            keys.Add(key);
            tree.Set(Record(key, 1));
        }
        for (var i = 0; i < 300; i++)
        {
            var bound = $"{(char)('a' + random.Next(4))}/{random.Next(100_000)}";
            var expected = keys.Where(k => string.CompareOrdinal(k, bound) >= 0).Take(100).ToList();
            var cursor = tree.From(Encoding.UTF8.GetBytes(bound));
            var got = new List<string>();
            while (got.Count < 100 && cursor.MoveNext()) got.Add(KeyRecord.KeyString(cursor.Current));
            Assert.Equal(expected, got);
        }
    }

    [Fact]
    public void Ascending_and_descending_loads_keep_leaves_full_and_empty_back_to_a_leaf()
    {
        foreach (var descending in new[] { false, true })
        {
            var tree = new RecordTree();
            const int n = 100_000;
            for (var i = 0; i < n; i++) tree.Set(Record($"key/{(descending ? n - i : i):D7}", 1));
            RecordTree.CheckInvariants(tree.Current);
            Assert.Equal(n, tree.Count);
            for (var i = 0; i < n; i++) Assert.NotNull(tree.Remove(Encoding.UTF8.GetBytes($"key/{(descending ? n - i : i):D7}")));
            RecordTree.CheckInvariants(tree.Current);
            Assert.Equal(0, tree.Count);
            Assert.Empty(tree.Current.Records());
        }
    }

    [Fact]
    public void A_branch_split_by_an_append_can_still_rebalance_its_children()
    {
        // An ascending load fills a branch with full leaves; the next key splits it. Had the split left
        // the new branch one child, that branch could not rebalance it: removing the key then left an
        // empty leaf in the tree.
        var tree = new RecordTree();
        const int n = RecordTree.LeafCapacity * RecordTree.BranchCapacity + 1;
        for (var i = 0; i < n; i++) tree.Set(Record($"key/{i:D7}", 1));
        RecordTree.CheckInvariants(tree.Current);
        Assert.NotNull(tree.Remove(Encoding.UTF8.GetBytes($"key/{n - 1:D7}")));
        RecordTree.CheckInvariants(tree.Current);
        Assert.Equal(n - 1, tree.Current.Records().Count());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(64)]
    [InlineData(65)]
    [InlineData(4_097)]
    [InlineData(300_001)]
    public void A_built_tree_holds_its_records_in_order_and_takes_writes(int n)
    {
        var builder = new RecordTree.Builder();
        for (var i = 0; i < n; i++) builder.Add(Record($"b/{i:D7}", 1));
        var view = builder.Build();
        RecordTree.CheckInvariants(view);
        Assert.Equal(n, view.Count);
        var tree = new RecordTree(view);
        for (var i = 0; i < n; i += 3) Assert.NotNull(tree.Remove(Encoding.UTF8.GetBytes($"b/{i:D7}")));
        for (var i = 0; i < n; i += 5) tree.Set(Record($"b/{i:D7}", 2));
        RecordTree.CheckInvariants(tree.Current);
        RecordTree.CheckInvariants(view);
        Assert.Equal(n, view.Count); // the view it started from is untouched
        Assert.Equal(Enumerable.Range(0, n).Select(i => $"b/{i:D7}"), view.Records().Select(KeyRecord.KeyString));
    }

    /// <summary>Keys compared as UTF-8 bytes sort exactly as string.CompareOrdinal sorts the strings,
    /// surrogate pairs against U+E000..U+FFFF included (where UTF-8 and UTF-16 orders differ).</summary>
    [Fact]
    public void Key_order_on_utf8_is_ordinal_string_order()
    {
        var seed = Seed(Environment.TickCount);
        var random = new Random(seed);
        string[] pieces = ["", "a", "b", "z", "é", "\u07FF", "\u0800", "\uD7FF", "\uE000", "\uFFFD", "\uFFFF", "😀", "\U00010000", "\U0010FFFF", "/", "\u00FF"];
        string Make() => string.Concat(Enumerable.Range(0, random.Next(4)).Select(_ => pieces[random.Next(pieces.Length)]));
        for (var i = 0; i < 50_000; i++)
        {
            string a = Make(), b = Make();
            var expected = Math.Sign(string.CompareOrdinal(a, b));
            Assert.True(expected == Math.Sign(KeyOrder.Compare(Encoding.UTF8.GetBytes(a), Encoding.UTF8.GetBytes(b))), $"\"{a}\" vs \"{b}\"");
        }
    }
}
