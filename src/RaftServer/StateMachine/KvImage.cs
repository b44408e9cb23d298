using System.Collections.Immutable;
using System.Runtime.InteropServices;

namespace RaftServer.StateMachine;

/// <summary>A lease as the state machine keeps it: its id (the index of its grant) and its time to
/// live. Which keys it holds follows from the keys' <see cref="KeyValueItem.Lease"/>.</summary>
public readonly record struct LeaseImage(long Id, long TtlMs);

/// <summary>
/// An immutable copy of a <see cref="KvStore"/> at <see cref="AppliedIndex"/>: every pair with its
/// revisions, the store's revision, the leases and the client sessions. The values are the store's
/// own arrays, shared, not copied: the store replaces a value's array on every write and never
/// changes one in place, so the image stays valid while the store goes on applying.
/// <para>
/// Capturing runs on the node loop, so it only copies the pairs in the dictionary's order; the
/// ordinal sort happens on first use of <see cref="Items"/>, which is meant to be on the
/// background thread that serialises the image (sorting 400,000 keys takes a few hundred
/// milliseconds the loop should not spend).
/// </para>
/// </summary>
public sealed class KvImage
{
    private readonly Lazy<ImmutableArray<KeyValueItem>> _items;

    public long AppliedIndex { get; }
    /// <summary>The store's revision: the index of the last entry that changed a key (0: none yet).</summary>
    public long Revision { get; }
    public SessionTableImage Sessions { get; }
    /// <summary>The leases, in ascending id order.</summary>
    public ImmutableArray<LeaseImage> Leases { get; }
    public int Count { get; }

    /// <summary>Every pair in ordinal key order (sorted on first access; thread-safe).</summary>
    public ImmutableArray<KeyValueItem> Items => _items.Value;

    /// <param name="items">the pairs, in any order (copied).</param>
    public KvImage(long appliedIndex, IEnumerable<KeyValueItem> items, SessionTableImage sessions)
        : this(appliedIndex, 0, items.ToArray(), [], sessions, sorted: false)
    {
    }

    /// <param name="items">the pairs, in any order (copied).</param>
    public KvImage(long appliedIndex, long revision, IEnumerable<KeyValueItem> items, ImmutableArray<LeaseImage> leases, SessionTableImage sessions)
        : this(appliedIndex, revision, items.ToArray(), leases, sessions, sorted: false)
    {
    }

    private KvImage(long appliedIndex, long revision, KeyValueItem[] items, ImmutableArray<LeaseImage> leases, SessionTableImage sessions, bool sorted)
    {
        AppliedIndex = appliedIndex;
        Revision = revision;
        Sessions = sessions;
        Leases = leases.IsDefault ? [] : leases;
        Count = items.Length;
        _items = sorted
            ? new(ImmutableCollectionsMarshal.AsImmutableArray(items))
            : new(() =>
            {
                items.AsSpan().Sort(new OrdinalByKey());
                return ImmutableCollectionsMarshal.AsImmutableArray(items);
            }, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>A struct comparer, so the sort calls it directly rather than through an interface.</summary>
    private readonly struct OrdinalByKey : IComparer<KeyValueItem>
    {
        public int Compare(KeyValueItem x, KeyValueItem y) => string.CompareOrdinal(x.Key, y.Key);
    }

    /// <summary>Takes ownership of <paramref name="items"/> (no copy); they are sorted later, on first use.</summary>
    internal static KvImage FromUnsorted(long appliedIndex, long revision, KeyValueItem[] items, ImmutableArray<LeaseImage> leases, SessionTableImage sessions) =>
        new(appliedIndex, revision, items, leases, sessions, sorted: false);

    /// <summary>Takes ownership of <paramref name="items"/>, which the caller has seen to be in ordinal key order.</summary>
    internal static KvImage FromSorted(long appliedIndex, long revision, KeyValueItem[] items, ImmutableArray<LeaseImage> leases, SessionTableImage sessions) =>
        new(appliedIndex, revision, items, leases, sessions, sorted: true);
}
