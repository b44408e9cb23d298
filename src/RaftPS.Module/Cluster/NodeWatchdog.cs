using System.Diagnostics;
using System.Globalization;

namespace RaftPS.Cluster;

/// <summary>
/// Unix: a tiny shell loop that stops a node if the PowerShell process that started it dies
/// without running its exit handlers (killed, terminal closed), so no orphaned server keeps a port
/// and a CPU busy. It runs on after that process, so it cannot ask it anything: it is given both
/// processes' start times (<see cref="ProcessIdentity"/>) and reads them again before each check
/// and each signal, so a process id the OS has handed to another program since is neither waited
/// on nor killed. It ends by itself once the node has exited. Pure .NET: the tests compile this file.
/// </summary>
internal static class NodeWatchdog
{
    /// <summary>
    /// $1 $2: the owner's (PowerShell's) pid and start time; $3 $4: the node's. <c>started PID</c>
    /// prints a process's start time as <see cref="ProcessIdentity"/> reads it (Linux: field 22 of
    /// /proc/PID/stat, read with the shell's own <c>read</c>, no process per check; elsewhere
    /// <c>ps -o lstart=</c>, blanks collapsed), or nothing when there is no such process.
    /// </summary>
    internal const string Script =
        "exec </dev/null >/dev/null 2>&1\n" +
        "started() {\n" +
        "  if [ -d /proc/self ]; then\n" +
        "    IFS= read -r s < \"/proc/$1/stat\" || return 0\n" +
        "    s=${s##*\")\"}\n" +
        "    set -- $s\n" +
        "    [ $# -ge 20 ] && echo \"${20}\"\n" +
        "  else\n" +
        "    echo $(ps -o lstart= -p \"$1\")\n" +
        "  fi\n" +
        "}\n" +
        "same() { [ -n \"$2\" ] && [ \"$(started \"$1\")\" = \"$2\" ]; }\n" +
        "while same \"$1\" \"$2\" && same \"$3\" \"$4\"; do sleep 1; done\n" +
        "if same \"$3\" \"$4\"; then kill -TERM \"$3\"; sleep 2; if same \"$3\" \"$4\"; then kill -KILL \"$3\"; fi; fi\n";

    /// <summary>Starts the watchdog of <paramref name="node"/> for <paramref name="owner"/> (in its own session when setsid exists).</summary>
    /// <returns>The watchdog's process (tests wait on it; the caller disposes it), or null when it could not start.</returns>
    public static Process? Start(string? setsid, ProcessIdentity owner, ProcessIdentity node)
    {
        try
        {
            var watch = new ProcessStartInfo { FileName = setsid ?? "/bin/sh", UseShellExecute = false };
            if (setsid is not null) watch.ArgumentList.Add("/bin/sh");
            watch.ArgumentList.Add("-c");
            watch.ArgumentList.Add(Script);
            watch.ArgumentList.Add("raftps-watchdog");
            watch.ArgumentList.Add(owner.ProcessId.ToString(CultureInfo.InvariantCulture));
            watch.ArgumentList.Add(owner.StartTime);
            watch.ArgumentList.Add(node.ProcessId.ToString(CultureInfo.InvariantCulture));
            watch.ArgumentList.Add(node.StartTime);
            return Process.Start(watch);
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or IOException)
        {
            // Best effort: the ProcessExit handler and Stop-RaftCluster still stop the node.
            return null;
        }
    }
}
