namespace RaftServer.Tests.Consensus.Simulation;

/// <summary>One client operation on a register (one key): a write of <see cref="Value"/>, or a
/// read that returned <see cref="Value"/> (0 = the key was absent). A write whose outcome is
/// unknown (timed out, server crashed) has <see cref="Return"/> = long.MaxValue: it may have taken
/// effect at any time after its call, or never.</summary>
internal sealed record Operation(int ClientId, bool IsWrite, int Key, int Value, long Call, long Return)
{
    public const long Pending = long.MaxValue;
}

/// <summary>
/// Wing &amp; Gong's linearizability search with Lowe's memoisation, as Porcupine does it: walk the
/// history's call/return events in time order; at each call, try to linearize that operation now
/// (if the register model allows it and the (set of linearized ops, state) pair is new), else move
/// on; a return of an operation not yet linearized means backtracking. Keys are independent
/// (a register per key), so each key's history is checked alone, which keeps the search small.
/// </summary>
internal static class LinearizabilityChecker
{
    public static bool IsLinearizable(IEnumerable<Operation> history, out string? problem)
    {
        foreach (var group in history.GroupBy(op => op.Key))
        {
            if (!CheckRegister(group.ToList()))
            {
                problem = $"key {group.Key} is not linearizable:\n" + string.Join("\n", group.OrderBy(o => o.Call).Select(Describe));
                return false;
            }
        }
        problem = null;
        return true;
    }

    private static string Describe(Operation op) =>
        $"  client {op.ClientId} {(op.IsWrite ? "write" : "read ")} {op.Value} [{op.Call}, {(op.Return == Operation.Pending ? "?" : op.Return.ToString())}]";

    private sealed class Event
    {
        public required int Op;
        public required bool IsCall;
        public required long Time;
        public Event? Match; // call -> its return
        public Event? Prev, Next;
    }

    /// <summary>Checks one register's history, starting from the absent value 0.</summary>
    public static bool CheckRegister(IReadOnlyList<Operation> ops)
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

        var linearized = new ulong[(n + 63) / 64];
        var cache = new HashSet<CacheKey>();
        var stack = new Stack<(Event Call, int State)>();
        int state = 0;
        var entry = head.Next;

        while (head.Next is not null)
        {
            if (entry is null) return false; // cannot happen: the list ends with a return
            if (entry.IsCall)
            {
                var op = ops[entry.Op];
                bool allowed = op.IsWrite || op.Value == state;
                int newState = op.IsWrite ? op.Value : state;
                if (allowed)
                {
                    linearized[entry.Op / 64] |= 1UL << (entry.Op % 64);
                    if (cache.Add(new CacheKey((ulong[])linearized.Clone(), newState)))
                    {
                        stack.Push((entry, state));
                        state = newState;
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
                linearized[call.Op / 64] &= ~(1UL << (call.Op % 64));
                Unlift(call);
                entry = call.Next;
            }
        }
        return true;
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
        private readonly int state;
        private readonly int hash;

        public CacheKey(ulong[] bits, int state)
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
