namespace RaftServer.StateMachine;

/// <summary>
/// The store's one index: a B+tree of <see cref="KeyRecord"/> arrays in <see cref="KeyOrder"/>,
/// serving point reads, ordered range reads and snapshots alike. A leaf is an array of record
/// references (8 bytes per key), so the whole tree is a few percent of the data it orders.
/// <para>
/// Copy-on-write: <see cref="Freeze"/> returns an immutable <see cref="View"/> of the tree as it
/// is, in O(1). Every node belongs to an epoch; a write clones each node of an older epoch on its
/// path before changing it, so a frozen view never changes while the tree goes on. A snapshot thus
/// shares every record and every node nobody writes; what it costs is the nodes written while it is
/// being saved (at most one copy of the tree's nodes, never of the records).
/// </para>
/// <para>
/// Searches touch few records: the keys of a node share a prefix (<see cref="Node.Prefix"/> bytes,
/// the common prefix of its first and last key), and each node keeps, beside its records or
/// separators, the next four bytes of each key as a number (<see cref="Node.Heads"/>, in one small
/// array; the first 16 bytes of the prefix are kept in the node too). A search compares numbers and
/// opens a key only where they tie (the key it finds, or keys that differ only further on, or a
/// prefix longer than 16 bytes): a hit among 10,000 short keys reads one key instead of about 14
/// (log2 10,000), each a likely cache miss on a node loop that shares its core with the gRPC threads.
/// </para>
/// Not thread-safe for writes (the node loop owns it); a view may be read from any thread.
/// </summary>
public sealed class RecordTree
{
    internal const int LeafCapacity = 64;
    internal const int BranchCapacity = 64;
    private const int LeafMin = LeafCapacity / 4;
    private const int BranchMin = BranchCapacity / 4;

    /// <summary>Identity of a write epoch: a node may be changed in place only by the epoch that made it.</summary>
    internal sealed class Epoch;

    /// <summary>
    /// A node's keys (a leaf's records' keys, a branch's separators), slots [0, <see cref="KeyCount"/>).
    /// Invariant: every one begins with the same <see cref="Prefix"/> bytes, and
    /// <c>Heads[i] == KeyHead.Of(key i, Prefix)</c>.
    /// </summary>
    internal abstract class Node(Epoch owner, int capacity)
    {
        public Epoch Owner = owner;
        public int Count;
        /// <summary>What the node's keys begin with (<see cref="Prefix"/> is its length).</summary>
        public KeyPrefix Shared;
        public int Prefix => Shared.Length;
        public uint[] Heads = new uint[capacity];
        public abstract int KeyCount { get; }
        public abstract ReadOnlySpan<byte> KeyAt(int i);
        public abstract Node Clone(Epoch owner);

        /// <summary>After the node's keys changed wholesale: the prefix of its first and last key, and every head.</summary>
        public void Reindex()
        {
            var n = KeyCount;
            Shared = n == 0 ? default : KeyPrefix.Of(KeyAt(0), KeyAt(0).CommonPrefixLength(KeyAt(n - 1)));
            for (var i = 0; i < n; i++) Heads[i] = KeyHead.Of(KeyAt(i), Prefix);
            Array.Clear(Heads, n, Heads.Length - n);
        }

        /// <summary>A key was put in slot <paramref name="i"/> (the slots after it moved up one): its head, or a
        /// new prefix and every head when it does not share the node's prefix.</summary>
        public void KeyInserted(int i)
        {
            var key = KeyAt(i);
            var n = KeyCount;
            if (n == 1 || !StartsWithPrefix(key, i == 0 ? 1 : 0))
            {
                Reindex();
                return;
            }
            InsertAt(Heads, n - 1, i, KeyHead.Of(key, Prefix));
        }

        /// <summary>The key in slot <paramref name="i"/> was replaced by another (a separator).</summary>
        public void KeyReplaced(int i)
        {
            var key = KeyAt(i);
            if (KeyCount > 1 && StartsWithPrefix(key, i == 0 ? 1 : 0)) Heads[i] = KeyHead.Of(key, Prefix);
            else Reindex();
        }

        /// <summary>Whether <paramref name="key"/> begins with the node's prefix: its first 16 bytes from the
        /// node itself, the rest (if longer) from the key in slot <paramref name="holder"/>, which has it.</summary>
        private bool StartsWithPrefix(ReadOnlySpan<byte> key, int holder)
        {
            var p = Prefix;
            return Shared.InlineMatches(key) && (p <= KeyPrefix.InlineBytes || key[KeyPrefix.InlineBytes..p].SequenceEqual(KeyAt(holder)[KeyPrefix.InlineBytes..p]));
        }

        /// <summary>
        /// Where <paramref name="key"/> falls among the node's keys: the first slot whose key is at or
        /// after it (<paramref name="orEqual"/> false) or after it (true); <paramref name="found"/>: a
        /// key equal to it is in that slot (false) or the one before (true).
        /// </summary>
        public int Locate(ReadOnlySpan<byte> key, bool orEqual, out bool found)
        {
            found = false;
            var n = KeyCount;
            if (n == 0) return 0;
            var p = Prefix;
            if (p > 0 && !StartsWithPrefix(key, 0))
            {
                // Outside the shared prefix the key is before or after every key of the node.
                return KeyOrder.Compare(key, KeyAt(0)[..p]) < 0 ? 0 : n;
            }
            var head = KeyHead.Of(key, Prefix);
            var heads = Heads;
            int lo = 0, hi = n;
            while (lo < hi)
            {
                var mid = (lo + hi) >>> 1;
                var h = heads[mid];
                var c = h < head ? -1 : h > head ? 1 : KeyOrder.Compare(KeyAt(mid), key);
                if (c == 0)
                {
                    found = true;
                    return orEqual ? mid + 1 : mid;
                }
                if (c < 0) lo = mid + 1;
                else hi = mid;
            }
            return lo;
        }
    }

    internal sealed class Leaf(Epoch owner) : Node(owner, LeafCapacity)
    {
        public byte[][] Records = new byte[LeafCapacity][];

        public override int KeyCount => Count;
        public override ReadOnlySpan<byte> KeyAt(int i) => KeyRecord.Key(Records[i]);

        public override Node Clone(Epoch owner) =>
            new Leaf(owner) { Count = Count, Shared = Shared, Heads = (uint[])Heads.Clone(), Records = (byte[][])Records.Clone() };
    }

    /// <summary>Children[0..Count); Keys[j] (j &lt; Count - 1) is a key (a copy) no greater than any key
    /// under Children[j + 1] and greater than every key under Children[0..j].</summary>
    internal sealed class Branch(Epoch owner) : Node(owner, BranchCapacity)
    {
        public byte[][] Keys = new byte[BranchCapacity][];
        public Node[] Children = new Node[BranchCapacity];

        public override int KeyCount => Count - 1;
        public override ReadOnlySpan<byte> KeyAt(int i) => Keys[i];

        public override Node Clone(Epoch owner) =>
            new Branch(owner) { Count = Count, Shared = Shared, Heads = (uint[])Heads.Clone(), Keys = (byte[][])Keys.Clone(), Children = (Node[])Children.Clone() };
    }

    /// <summary>An immutable tree: every record in key order, readable from any thread.</summary>
    public sealed class View
    {
        internal readonly Node Root;
        public int Count { get; }

        internal View(Node root, int count)
        {
            Root = root;
            Count = count;
        }

        public static readonly View Empty = new(new Leaf(new Epoch()), 0);

        /// <summary>Every record in key order.</summary>
        public IEnumerable<byte[]> Records()
        {
            var cursor = new Cursor(Root, default, fromStart: true);
            while (cursor.MoveNext()) yield return cursor.Current;
        }
    }

    private Node _root;
    private Epoch _epoch;

    public int Count { get; private set; }

    public RecordTree()
    {
        _epoch = new Epoch();
        _root = new Leaf(_epoch);
    }

    /// <summary>A tree that starts as <paramref name="view"/> (shared, copied node by node as it is written).</summary>
    public RecordTree(View view)
    {
        _epoch = new Epoch();
        _root = view.Root;
        Count = view.Count;
    }

    /// <summary>The tree as it is now, unchanged by any later write.</summary>
    public View Freeze()
    {
        var view = new View(_root, Count);
        _epoch = new Epoch();
        return view;
    }

    public byte[]? Find(ReadOnlySpan<byte> key)
    {
        var node = _root;
        while (node is Branch b) node = b.Children[ChildIndex(b, key)];
        var leaf = (Leaf)node;
        var i = Search(leaf, key, out var found);
        return found ? leaf.Records[i] : null;
    }

    /// <summary>
    /// The slot holding the key's record, on a path this tree may change (nodes of a frozen view on
    /// it are copied first): assign a record with the same key to replace it. When the key is
    /// absent, a slot holding null that must not be assigned (add with <see cref="Set"/>). Valid
    /// until the next write.
    /// </summary>
    public ref byte[]? SlotFor(ReadOnlySpan<byte> key)
    {
        var node = Writable(_root);
        _root = node;
        while (node is Branch b)
        {
            var c = ChildIndex(b, key);
            var child = Writable(b.Children[c]);
            b.Children[c] = child;
            node = child;
        }
        var leaf = (Leaf)node;
        var i = Search(leaf, key, out var found);
        if (found) return ref leaf.Records[i]!;
        _absent = null;
        return ref _absent;
    }

    private byte[]? _absent;

    /// <summary>Records from the first key at or after <paramref name="lower"/>, in key order. Valid until the next write.</summary>
    public Cursor From(ReadOnlySpan<byte> lower) => new(_root, lower, fromStart: false);

    /// <summary>Adds the record, or replaces the one with its key; returns the replaced one (null: added).</summary>
    public byte[]? Set(byte[] record)
    {
        var key = KeyRecord.Key(record);
        var root = Writable(_root);
        var old = Insert(root, record, key, out var splitKey, out var right);
        if (right is not null)
        {
            var top = new Branch(_epoch) { Count = 2 };
            top.Children[0] = root;
            top.Children[1] = right;
            top.Keys[0] = splitKey!;
            top.Reindex();
            root = top;
        }
        _root = root;
        if (old is null) Count++;
        return old;
    }

    /// <summary>Removes the key's record and returns it (null: there was none).</summary>
    public byte[]? Remove(ReadOnlySpan<byte> key)
    {
        // A miss must not clone the path of a frozen tree.
        if (Find(key) is null) return null;
        var root = Writable(_root);
        var old = Delete(root, key);
        if (root is Branch { Count: 1 } b) root = b.Children[0];
        _root = root;
        Count--;
        return old;
    }

    // ---- search ----

    /// <summary>The child whose range holds <paramref name="key"/>: the number of separators at or below it.</summary>
    private static int ChildIndex(Branch b, ReadOnlySpan<byte> key) => b.Locate(key, orEqual: true, out _);

    /// <summary>The first slot whose key is at or after <paramref name="key"/>; <paramref name="found"/>: equal.</summary>
    private static int Search(Leaf leaf, ReadOnlySpan<byte> key, out bool found) => leaf.Locate(key, orEqual: false, out found);

    // ---- writes ----

    private Node Writable(Node node) => ReferenceEquals(node.Owner, _epoch) ? node : node.Clone(_epoch);

    private static byte[] SeparatorOf(byte[] record) => KeyRecord.Key(record).ToArray();

    private byte[]? Insert(Node node, byte[] record, ReadOnlySpan<byte> key, out byte[]? splitKey, out Node? right)
    {
        splitKey = null;
        right = null;
        if (node is Leaf leaf)
        {
            var i = Search(leaf, key, out var found);
            if (found)
            {
                var old = leaf.Records[i];
                leaf.Records[i] = record;
                return old;
            }
            if (leaf.Count < LeafCapacity)
            {
                InsertAt(leaf.Records, leaf.Count, i, record);
                leaf.Count++;
                leaf.KeyInserted(i);
                return null;
            }
            // Full. Keys written in ascending order (the usual bulk load) leave full leaves behind
            // rather than half-empty ones: an append starts a new leaf.
            var keep = i == LeafCapacity ? LeafCapacity : LeafCapacity / 2;
            var r = new Leaf(_epoch) { Count = LeafCapacity - keep };
            Array.Copy(leaf.Records, keep, r.Records, 0, r.Count);
            Array.Clear(leaf.Records, keep, r.Count);
            leaf.Count = keep;
            if (i < keep || (i == keep && keep < LeafCapacity))
            {
                InsertAt(leaf.Records, leaf.Count, i, record);
                leaf.Count++;
            }
            else
            {
                InsertAt(r.Records, r.Count, i - keep, record);
                r.Count++;
            }
            leaf.Reindex();
            r.Reindex();
            splitKey = SeparatorOf(r.Records[0]);
            right = r;
            return null;
        }

        var b = (Branch)node;
        var c = ChildIndex(b, key);
        var child = Writable(b.Children[c]);
        b.Children[c] = child;
        var replaced = Insert(child, record, key, out var childSplit, out var childRight);
        if (childRight is null) return replaced;
        if (b.Count < BranchCapacity)
        {
            InsertAt(b.Keys, b.Count - 1, c, childSplit!);
            InsertAt(b.Children, b.Count, c + 1, childRight);
            b.Count++;
            b.KeyInserted(c);
            return replaced;
        }
        // Full: split the BranchCapacity + 1 children. An append keeps the left one nearly full and gives the
        // right one two children, not one: a branch rebalances a child with its sibling, so a branch of one
        // child would let that child empty out.
        var keys = new byte[BranchCapacity][];
        var children = new Node[BranchCapacity + 1];
        Array.Copy(b.Keys, keys, b.Count - 1);
        Array.Copy(b.Children, children, b.Count);
        InsertAt(keys, b.Count - 1, c, childSplit!);
        InsertAt(children, b.Count, c + 1, childRight);
        var total = BranchCapacity + 1;
        var leftCount = c + 1 == BranchCapacity ? BranchCapacity - 1 : total / 2;
        var rb = new Branch(_epoch);
        Fill(b, keys, children, 0, leftCount);
        Fill(rb, keys, children, leftCount, total - leftCount);
        splitKey = keys[leftCount - 1];
        right = rb;
        return replaced;
    }

    /// <summary>Makes <paramref name="b"/> hold children[start..start+count) with the separators between them.</summary>
    private static void Fill(Branch b, byte[][] keys, Node[] children, int start, int count)
    {
        Array.Clear(b.Keys);
        Array.Clear(b.Children);
        Array.Copy(children, start, b.Children, 0, count);
        Array.Copy(keys, start, b.Keys, 0, count - 1);
        b.Count = count;
        b.Reindex();
    }

    private static void InsertAt<T>(T[] array, int count, int index, T item)
    {
        if (index < count) Array.Copy(array, index, array, index + 1, count - index);
        array[index] = item;
    }

    private static void RemoveAt<T>(T[] array, int count, int index)
    {
        if (index < count - 1) Array.Copy(array, index + 1, array, index, count - index - 1);
        array[count - 1] = default!;
    }

    private byte[] Delete(Node node, ReadOnlySpan<byte> key)
    {
        if (node is Leaf leaf)
        {
            var i = Search(leaf, key, out var found);
            if (!found) throw new InvalidOperationException("the record to delete is missing (Remove checked it is there)");
            var old = leaf.Records[i];
            RemoveAt(leaf.Records, leaf.Count, i);
            RemoveAt(leaf.Heads, leaf.Count, i);
            leaf.Count--;
            return old;
        }
        var b = (Branch)node;
        var c = ChildIndex(b, key);
        var child = Writable(b.Children[c]);
        b.Children[c] = child;
        var removed = Delete(child, key);
        if (child.Count < (child is Leaf ? LeafMin : BranchMin) && b.Count > 1) Rebalance(b, c);
        return removed;
    }

    /// <summary>Child <paramref name="c"/> of <paramref name="parent"/> is under its minimum: merges it with
    /// a neighbour when both fit in one node, else evens the two out.</summary>
    private void Rebalance(Branch parent, int c)
    {
        var l = c > 0 ? c - 1 : c;
        var left = Writable(parent.Children[l]);
        var right = Writable(parent.Children[l + 1]);
        parent.Children[l] = left;
        parent.Children[l + 1] = right;
        if (left is Leaf ll)
        {
            var rl = (Leaf)right;
            var total = ll.Count + rl.Count;
            if (total <= LeafCapacity)
            {
                Array.Copy(rl.Records, 0, ll.Records, ll.Count, rl.Count);
                ll.Count = total;
                ll.Reindex();
                RemoveChild(parent, l + 1);
                return;
            }
            var all = new byte[total][];
            Array.Copy(ll.Records, all, ll.Count);
            Array.Copy(rl.Records, 0, all, ll.Count, rl.Count);
            var leftCount = total / 2;
            Array.Clear(ll.Records);
            Array.Clear(rl.Records);
            Array.Copy(all, ll.Records, leftCount);
            Array.Copy(all, leftCount, rl.Records, 0, total - leftCount);
            ll.Count = leftCount;
            rl.Count = total - leftCount;
            ll.Reindex();
            rl.Reindex();
            parent.Keys[l] = SeparatorOf(rl.Records[0]);
            parent.KeyReplaced(l);
            return;
        }
        var lb = (Branch)left;
        var rb = (Branch)right;
        var count = lb.Count + rb.Count;
        var keys = new byte[count - 1][];
        var children = new Node[count];
        Array.Copy(lb.Keys, keys, lb.Count - 1);
        keys[lb.Count - 1] = parent.Keys[l];
        Array.Copy(rb.Keys, 0, keys, lb.Count, rb.Count - 1);
        Array.Copy(lb.Children, children, lb.Count);
        Array.Copy(rb.Children, 0, children, lb.Count, rb.Count);
        if (count <= BranchCapacity)
        {
            Fill(lb, keys, children, 0, count);
            RemoveChild(parent, l + 1);
            return;
        }
        var half = count / 2;
        Fill(lb, keys, children, 0, half);
        Fill(rb, keys, children, half, count - half);
        parent.Keys[l] = keys[half - 1];
        parent.KeyReplaced(l);
    }

    private static void RemoveChild(Branch parent, int index)
    {
        RemoveAt(parent.Children, parent.Count, index);
        RemoveAt(parent.Keys, parent.Count - 1, index - 1);
        RemoveAt(parent.Heads, parent.Count - 1, index - 1);
        parent.Count--;
    }

    // ---- reading in order ----

    /// <summary>A position in a tree, moving in key order. Over a live tree, valid until its next write.</summary>
    public sealed class Cursor
    {
        private readonly List<(Branch Node, int Child)> _path = new(8);
        private Leaf? _leaf;
        private int _index;

        internal Cursor(Node root, ReadOnlySpan<byte> lower, bool fromStart)
        {
            var node = root;
            while (node is Branch b)
            {
                var c = fromStart ? 0 : ChildIndex(b, lower);
                _path.Add((b, c));
                node = b.Children[c];
            }
            _leaf = (Leaf)node;
            _index = (fromStart ? 0 : Search(_leaf, lower, out _)) - 1;
        }

        public byte[] Current => _leaf!.Records[_index];

        public bool MoveNext()
        {
            if (_leaf is null) return false;
            _index++;
            while (_index >= _leaf.Count)
            {
                if (!NextLeaf())
                {
                    _leaf = null;
                    return false;
                }
                _index = 0;
            }
            return true;
        }

        private bool NextLeaf()
        {
            while (_path.Count > 0)
            {
                var (b, c) = _path[^1];
                _path.RemoveAt(_path.Count - 1);
                if (c + 1 >= b.Count) continue;
                _path.Add((b, c + 1));
                var node = b.Children[c + 1];
                while (node is Branch nb)
                {
                    _path.Add((nb, 0));
                    node = nb.Children[0];
                }
                _leaf = (Leaf)node;
                return true;
            }
            return false;
        }
    }

    // ---- building from sorted records ----

    /// <summary>Builds a view from records added in key order (full leaves, no rebalancing on the way).
    /// Does not check the order: callers check it (the snapshot reader, <see cref="KvStore.FromImage"/>).</summary>
    public sealed class Builder
    {
        private readonly Epoch _epoch = new();
        private readonly List<Node> _leaves = new();
        private Leaf? _current;
        private int _count;

        public void Add(byte[] record)
        {
            if (_current is null || _current.Count == LeafCapacity)
            {
                _current = new Leaf(_epoch);
                _leaves.Add(_current);
            }
            _current.Records[_current.Count++] = record;
            _count++;
        }

        public View Build()
        {
            if (_leaves.Count == 0) return new View(new Leaf(_epoch), 0);
            // The last leaf may be nearly empty: share with the one before it.
            if (_leaves.Count > 1 && _leaves[^1].Count < LeafMin)
            {
                var a = (Leaf)_leaves[^2];
                var b = (Leaf)_leaves[^1];
                var total = a.Count + b.Count;
                var all = new byte[total][];
                Array.Copy(a.Records, all, a.Count);
                Array.Copy(b.Records, 0, all, a.Count, b.Count);
                Array.Clear(a.Records);
                Array.Clear(b.Records);
                a.Count = total / 2;
                b.Count = total - a.Count;
                Array.Copy(all, a.Records, a.Count);
                Array.Copy(all, a.Count, b.Records, 0, b.Count);
            }
            foreach (var leaf in _leaves) leaf.Reindex();
            var level = _leaves;
            var firsts = _leaves.Select(n => SeparatorOf(((Leaf)n).Records[0])).ToList();
            while (level.Count > 1)
            {
                var groups = (level.Count + BranchCapacity - 1) / BranchCapacity;
                var next = new List<Node>(groups);
                var nextFirsts = new List<byte[]>(groups);
                var start = 0;
                for (var g = 0; g < groups; g++)
                {
                    // Spread evenly, so no branch is left with a single child.
                    var size = (level.Count - start) / (groups - g);
                    var branch = new Branch(_epoch) { Count = size };
                    for (var j = 0; j < size; j++)
                    {
                        branch.Children[j] = level[start + j];
                        if (j > 0) branch.Keys[j - 1] = firsts[start + j];
                    }
                    branch.Reindex();
                    next.Add(branch);
                    nextFirsts.Add(firsts[start]);
                    start += size;
                }
                level = next;
                firsts = nextFirsts;
            }
            return new View(level[0], _count);
        }
    }

    // ---- checking (tests) ----

    /// <summary>Throws if the structure is broken: order, separators, counts, cleared slots.</summary>
    internal static void CheckInvariants(View view)
    {
        var seen = 0;
        byte[]? previous = null;
        Check(view.Root, null, null, isRoot: true, ref seen, ref previous);
        if (seen != view.Count) throw new InvalidOperationException($"count {view.Count} but {seen} records");
    }

    internal View Current => new(_root, Count);

    private static void Check(Node node, byte[]? low, byte[]? high, bool isRoot, ref int seen, ref byte[]? previous)
    {
        if (!isRoot && node.Count == 0) throw new InvalidOperationException("an empty node below the root");
        for (var i = 0; i < node.KeyCount; i++)
        {
            if (!node.KeyAt(i).StartsWith(node.KeyAt(0)[..node.Prefix])) throw new InvalidOperationException("a key without its node's prefix");
            if (node.Heads[i] != KeyHead.Of(node.KeyAt(i), node.Prefix)) throw new InvalidOperationException("a head that is not its key's");
        }
        if (node.KeyCount > 0 && !node.Shared.InlineMatches(node.KeyAt(0))) throw new InvalidOperationException("an inline prefix that is not the keys'");
        if (node is Leaf leaf)
        {
            for (var i = 0; i < LeafCapacity; i++)
            {
                var r = leaf.Records[i];
                if (i >= leaf.Count)
                {
                    if (r is not null) throw new InvalidOperationException("a slot past the count holds a record");
                    continue;
                }
                var k = KeyRecord.Key(r);
                if (previous is not null && KeyOrder.Compare(KeyRecord.Key(previous), k) >= 0) throw new InvalidOperationException("records out of order");
                if (low is not null && KeyOrder.Compare(k, low) < 0) throw new InvalidOperationException("a record below its separator");
                if (high is not null && KeyOrder.Compare(k, high) >= 0) throw new InvalidOperationException("a record at or above the next separator");
                previous = r;
                seen++;
            }
            return;
        }
        var b = (Branch)node;
        if (b.Count < 2) throw new InvalidOperationException("a branch with one child");
        for (var i = b.Count; i < BranchCapacity; i++)
            if (b.Children[i] is not null) throw new InvalidOperationException("a child slot past the count is set");
        for (var i = b.Count - 1; i < BranchCapacity; i++)
            if (b.Keys[i] is not null) throw new InvalidOperationException("a separator slot past the count is set");
        for (var i = 0; i < b.Count; i++)
            Check(b.Children[i], i == 0 ? low : b.Keys[i - 1], i == b.Count - 1 ? high : b.Keys[i], false, ref seen, ref previous);
    }
}
