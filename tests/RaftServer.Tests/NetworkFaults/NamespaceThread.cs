using System.Collections.Concurrent;

namespace RaftServer.Tests.NetworkFaults;

/// <summary>
/// A thread that lives in one network namespace and runs what it is given there. A socket or TUN
/// device belongs to the namespace of the thread that made it, for good: so the test's clients
/// make their sockets here and then use them from any thread, and their traffic can only go
/// where that namespace has routes (the lab's own addresses, nothing else).
/// </summary>
internal sealed class NamespaceThread : IDisposable
{
    private readonly BlockingCollection<Action> _work = new();
    private readonly Thread _thread;
    private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public string Namespace { get; }

    public NamespaceThread(string ns)
    {
        Namespace = ns;
        _thread = new Thread(Run) { IsBackground = true, Name = $"netns {ns}" };
        _thread.Start();
        _entered.Task.GetAwaiter().GetResult(); // throws if setns failed
    }

    private void Run()
    {
        try
        {
            Native.EnterNetworkNamespace(Namespace);
            _entered.SetResult();
        }
        catch (Exception e)
        {
            _entered.SetException(e);
            return;
        }
        foreach (var action in _work.GetConsumingEnumerable()) action();
    }

    public T Invoke<T>(Func<T> func)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        _work.Add(() =>
        {
            try { done.SetResult(func()); }
            catch (Exception e) { done.SetException(e); }
        });
        return done.Task.GetAwaiter().GetResult();
    }

    public void Dispose()
    {
        _work.CompleteAdding();
        _thread.Join(TimeSpan.FromSeconds(5));
        _work.Dispose();
    }
}
