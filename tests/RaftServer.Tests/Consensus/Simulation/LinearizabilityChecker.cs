namespace RaftServer.Tests.Consensus.Simulation;

internal enum OpKind
{
    /// <summary>Sets the register to Value (its revision becomes the write's Revision).</summary>
    Write,
    /// <summary>Returned Value (0 = absent) and, when Revision &gt; 0, the key's mod revision.</summary>
    Read,
    /// <summary>Sets Value if the register's revision is Expected (0 = absent).</summary>
    CasRevision,
    /// <summary>Sets Value if the register's value is Expected (0 = absent).</summary>
    CasValue,
}

/// <summary>
/// One client operation on a register (one key). A write whose outcome is unknown (timed out,
/// server crashed) has <see cref="Return"/> = long.MaxValue: it may have taken effect at any time
/// after its call, or never.
/// </summary>
/// <param name="Value">Write, Cas: the value written; Read: the value read (0 = absent).</param>
internal sealed record Operation(int ClientId, bool IsWrite, int Key, int Value, long Call, long Return)
{
    public const long Pending = long.MaxValue;

    public OpKind Kind { get; init; } = IsWrite ? OpKind.Write : OpKind.Read;
    /// <summary>Write, Cas: the revision the write makes if it takes effect (its log index); 0 in
    /// histories without revisions. Read: the revision read (0: not checked).</summary>
    public long Revision { get; init; }
    /// <summary>Cas: the revision or value compared (0: absent).</summary>
    public long Expected { get; init; }
    /// <summary>Cas: the outcome the client was told (null: it never learned it).</summary>
    public bool? Succeeded { get; init; }
    /// <summary>A failed Cas: the key's mod revision the answer named.</summary>
    public long CurrentRevision { get; init; }
}

/// <summary>The state of a register: its value (0 = absent) and mod revision (0 = absent).</summary>
internal readonly record struct RegisterState(long Value, long Revision);

/// <summary>
/// Wing &amp; Gong's linearizability search with Lowe's memoisation, as Porcupine does it: walk the
/// history's call/return events in time order; at each call, try to linearize that operation now
/// (if the register model allows it and the (set of linearized ops, state) pair is new), else move
/// on; a return of an operation not yet linearized means backtracking. Keys are independent
/// (a register per key), so each key's history is checked alone, which keeps the search small.
/// The model is a compare-and-set register with revisions (<see cref="Step"/>).
/// </summary>
internal static class LinearizabilityChecker
{
    /// <summary>
    /// How many (linearized set, state) pairs the search of one key may visit before it gives up.
    /// Operations whose outcome is unknown may each take effect anywhere or never, so a few dozen
    /// of them overlapping on one key make the search exponential; a test then fails, naming the
    /// key and its history, instead of running for hours and filling the memory.
    /// </summary>
    public const int MaxSearchStates = 2_000_000;

    /// <exception cref="LinearizabilitySearchTooLargeException">The search of a key visited <paramref name="maxSearchStates"/> states without a verdict.</exception>
    public static bool IsLinearizable(IEnumerable<Operation> history, out string? problem, int maxSearchStates = MaxSearchStates)
    {
        foreach (var group in history.GroupBy(op => op.Key))
        {
            var ops = group.ToList();
            bool linearizable;
            try
            {
                linearizable = CheckRegister(ops, maxSearchStates);
            }
            catch (LinearizabilitySearchTooLargeException e)
            {
                throw new LinearizabilitySearchTooLargeException(
                    $"{e.Message} on key {group.Key} ({ops.Count} operations, {ops.Count(o => o.Return == Operation.Pending)} of unknown outcome); no verdict:\n" + Describe(ops));
            }
            if (!linearizable)
            {
                problem = $"key {group.Key} is not linearizable:\n" + Describe(ops);
                return false;
            }
        }
        problem = null;
        return true;
    }

    /// <summary>One line per operation, in the order of their calls.</summary>
    private static string Describe(IEnumerable<Operation> ops) => string.Join("\n", ops.OrderBy(o => o.Call).Select(Describe));

    private static string Describe(Operation op)
    {
        var what = op.Kind switch
        {
            OpKind.Write => $"write {op.Value} @{op.Revision}",
            OpKind.Read => $"read  {op.Value} @{op.Revision}",
            OpKind.CasRevision => $"cas   {op.Value} @{op.Revision} if rev={op.Expected}",
            _ => $"cas   {op.Value} @{op.Revision} if val={op.Expected}",
        };
        if (op.Kind is OpKind.CasRevision or OpKind.CasValue)
            what += op.Succeeded switch { true => " -> ok", false => $" -> failed (rev {op.CurrentRevision})", null => " -> ?" };
        return $"  client {op.ClientId} {what} [{op.Call}, {(op.Return == Operation.Pending ? "?" : op.Return.ToString())}]";
    }

    /// <summary>
    /// The register's transition: whether <paramref name="op"/> may take effect in
    /// <paramref name="state"/> with the result its client saw, and the state after it. A Cas
    /// whose outcome is unknown takes effect exactly when its condition holds (the state machine
    /// is deterministic), and changes nothing otherwise.
    /// </summary>
    public static bool Step(RegisterState state, Operation op, out RegisterState next)
    {
        next = state;
        switch (op.Kind)
        {
            case OpKind.Write:
                next = new RegisterState(op.Value, op.Revision);
                return true;
            case OpKind.Read:
                return state.Value == op.Value && (op.Revision == 0 || state.Revision == op.Revision);
            default:
                var holds = op.Kind == OpKind.CasRevision ? state.Revision == op.Expected : state.Value == op.Expected;
                switch (op.Succeeded)
                {
                    case null:
                        if (holds) next = new RegisterState(op.Value, op.Revision);
                        return true;
                    case true:
                        if (!holds) return false;
                        next = new RegisterState(op.Value, op.Revision);
                        return true;
                    default:
                        return !holds && state.Revision == op.CurrentRevision;
                }
        }
    }

    private sealed class Event
    {
        public required int Op;
        public required bool IsCall;
        public required long Time;
        public Event? Match; // call -> its return
        public Event? Prev, Next;
    }

    /// <summary>Checks one register's history, starting from the absent state (0, 0).</summary>
    /// <exception cref="LinearizabilitySearchTooLargeException">After <paramref name="maxSearchStates"/> states without a verdict.</exception>
    public static bool CheckRegister(IReadOnlyList<Operation> ops, int maxSearchStates = MaxSearchStates)
    {
        int n = ops.Count;
        if (n == 0) return true;

        // Events in time order; at equal times calls first, so such operations count as concurrent.
        var events = new List<Event>(2 * n);
        for (int i = 0; i < n; i++)
        {
            var call = new Event { Op = i, IsCall = true, Time = ops[i].Call };
            var ret = new Event { Op = i, IsCall = false, Time = ops[i].Return };
            call.Match = ret;
            events.Add(call);
            events.Add(ret);
        }
        events.Sort((a, b) => a.Time != b.Time ? a.Time.CompareTo(b.Time) : (a.IsCall == b.IsCall ? a.Op.CompareTo(b.Op) : (a.IsCall ? -1 : 1)));

        var head = new Event { Op = -1, IsCall = false, Time = long.MinValue };
        var prev = head;
        foreach (var e in events)
        {
            prev.Next = e;
            e.Prev = prev;
            prev = e;
        }

        var logOrder = LogOrder(ops);
        var loggedDone = 0; // how many of the logged writes are linearized: always the first ones of the log
        var linearized = new ulong[(n + 63) / 64];
        var cache = new HashSet<CacheKey>();
        var stack = new Stack<(Event Call, RegisterState State)>();
        var state = new RegisterState(0, 0);
        var entry = head.Next;

        while (head.Next is not null)
        {
            if (entry is null) return false; // cannot happen: the list ends with a return
            if (entry.IsCall)
            {
                var rank = logOrder?[entry.Op] ?? -1;
                if ((rank < 0 || rank == loggedDone) && Step(state, ops[entry.Op], out var newState))
                {
                    linearized[entry.Op / 64] |= 1UL << (entry.Op % 64);
                    if (cache.Add(new CacheKey((ulong[])linearized.Clone(), newState)))
                    {
                        if (cache.Count > maxSearchStates)
                            throw new LinearizabilitySearchTooLargeException($"the linearizability search gave up after {maxSearchStates:N0} states");
                        stack.Push((entry, state));
                        state = newState;
                        if (rank >= 0) loggedDone++;
                        Lift(entry);
                        entry = head.Next;
                        continue;
                    }
                    linearized[entry.Op / 64] &= ~(1UL << (entry.Op % 64));
                }
                entry = entry.Next;
            }
            else
            {
                // The operation returned before we could linearize it: undo the last choice.
                if (stack.Count == 0) return false;
                var (call, previousState) = stack.Pop();
                state = previousState;
                if (logOrder?[call.Op] >= 0) loggedDone--;
                linearized[call.Op / 64] &= ~(1UL << (call.Op % 64));
                Unlift(call);
                entry = call.Next;
            }
        }
        return true;
    }

    /// <summary>
    /// Each write's place in the log among the writes whose log index is known (their
    /// <see cref="Operation.Revision"/>; -1 for the others), or null when no two of them can be
    /// ordered so (none, or two naming one index). Such writes took effect in the log's order,
    /// whether they changed the key or not, so the search linearizes them in exactly that order:
    /// a necessary condition that loses no linearization, and without which a few dozen of them
    /// that overlap in time (committed together after a stretch without a leader), most of them
    /// compare-and-sets whose condition failed and left the key as it was, are tried in every
    /// subset and order.
    /// </summary>
    private static int[]? LogOrder(IReadOnlyList<Operation> ops)
    {
        var logged = Enumerable.Range(0, ops.Count)
            .Where(i => ops[i].Kind != OpKind.Read && ops[i].Revision > 0 && ops[i].Return != Operation.Pending)
            .OrderBy(i => ops[i].Revision)
            .ToList();
        if (logged.Count < 2) return null;
        for (var k = 1; k < logged.Count; k++)
            if (ops[logged[k]].Revision == ops[logged[k - 1]].Revision) return null;
        var order = new int[ops.Count];
        Array.Fill(order, -1);
        for (var k = 0; k < logged.Count; k++) order[logged[k]] = k;
        return order;
    }

    private static void Lift(Event call)
    {
        call.Prev!.Next = call.Next;
        if (call.Next is not null) call.Next.Prev = call.Prev;
        var ret = call.Match!;
        ret.Prev!.Next = ret.Next;
        if (ret.Next is not null) ret.Next.Prev = ret.Prev;
    }

    private static void Unlift(Event call)
    {
        var ret = call.Match!;
        ret.Prev!.Next = ret;
        if (ret.Next is not null) ret.Next.Prev = ret;
        call.Prev!.Next = call;
        if (call.Next is not null) call.Next.Prev = call;
    }

    private readonly struct CacheKey : IEquatable<CacheKey>
    {
        private readonly ulong[] bits;
        private readonly RegisterState state;
        private readonly int hash;

        public CacheKey(ulong[] bits, RegisterState state)
        {
            this.bits = bits;
            this.state = state;
            var h = new HashCode();
            foreach (var word in bits) h.Add(word);
            h.Add(state);
            hash = h.ToHashCode();
        }

        public bool Equals(CacheKey other) => state == other.state && bits.AsSpan().SequenceEqual(other.bits);
        public override bool Equals(object? obj) => obj is CacheKey other && Equals(other);
        public override int GetHashCode() => hash;
    }
}

/// <summary>The checker could not decide a history within <see cref="LinearizabilityChecker.MaxSearchStates"/>: neither a pass nor a violation.</summary>
internal sealed class LinearizabilitySearchTooLargeException(string message) : Exception(message);
