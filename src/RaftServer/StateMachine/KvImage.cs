using System.Collections.Immutable;
using System.Text;

namespace RaftServer.StateMachine;

/// <summary>A lease as the state machine keeps it: its id (the index of its grant) and its time to
/// live. Which keys it holds follows from the keys' <see cref="KeyValueItem.Lease"/>.</summary>
public readonly record struct LeaseImage(long Id, long TtlMs);

/// <summary>
/// An immutable copy of a <see cref="KvStore"/> at <see cref="AppliedIndex"/>: every pair with its
/// revisions, the store's revision, the leases and the client sessions. The pairs are a frozen
/// <see cref="RecordTree.View"/> of the store's own tree, already in key order: capturing costs
/// O(1) for the keys (the store copies the tree's nodes it writes afterwards, never the records),
/// so a snapshot is streamed from the same records the store serves, with no second copy.
/// </summary>
public sealed class KvImage
{
    public long AppliedIndex { get; }
    /// <summary>The store's revision: the index of the last entry that changed a key (0: none yet).</summary>
    public long Revision { get; }
    public SessionTableImage Sessions { get; }
    /// <summary>The leases, in ascending id order.</summary>
    public ImmutableArray<LeaseImage> Leases { get; }
    /// <summary>The pairs as <see cref="KeyRecord"/>s in key order.</summary>
    public RecordTree.View Tree { get; }
    public int Count => Tree.Count;

    /// <summary>Every pair in ordinal key order (decoded as it is read).</summary>
    public IEnumerable<KeyValueItem> Items => Tree.Records().Select(r => KeyRecord.ToItem(r));

    /// <param name="items">the pairs, in any order (copied).</param>
    public KvImage(long appliedIndex, IEnumerable<KeyValueItem> items, SessionTableImage sessions)
        : this(appliedIndex, 0, Build(items), [], sessions)
    {
    }

    /// <param name="items">the pairs, in any order (copied).</param>
    public KvImage(long appliedIndex, long revision, IEnumerable<KeyValueItem> items, ImmutableArray<LeaseImage> leases, SessionTableImage sessions)
        : this(appliedIndex, revision, Build(items), leases, sessions)
    {
    }

    internal KvImage(long appliedIndex, long revision, RecordTree.View tree, ImmutableArray<LeaseImage> leases, SessionTableImage sessions)
    {
        AppliedIndex = appliedIndex;
        Revision = revision;
        Sessions = sessions;
        Leases = leases.IsDefault ? [] : leases;
        Tree = tree;
    }

    /// <summary>A tree of the pairs in key order; a key given twice stays twice (for
    /// <see cref="KvStore.FromImage"/> and the snapshot reader to refuse).</summary>
    private static RecordTree.View Build(IEnumerable<KeyValueItem> items)
    {
        var records = items.Select(i => KeyRecord.Create(Encoding.UTF8.GetBytes(i.Key), i.Value.Span, i.CreateRevision, i.ModRevision, i.Version, i.Lease)).ToArray();
        Array.Sort(records, static (a, b) => KeyOrder.Compare(KeyRecord.Key(a), KeyRecord.Key(b)));
        var builder = new RecordTree.Builder();
        foreach (var r in records) builder.Add(r);
        return builder.Build();
    }
}
