using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace RaftServer.Tests.Integration;

/// <summary>
/// A node under a service manager: systemd's readiness protocol (Type=notify) and --log-file (a
/// Windows service has no console). The Windows service lifetime itself cannot run here
/// (docs/operations.md lists what was verified only by build).
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class ServiceHostingTests : IDisposable
{
    private readonly string _dir = ServerProcess.TempDir("service");

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    /// <summary>
    /// Microsoft.Extensions.Hosting.Systemd acts only when the parent process is named "systemd":
    /// a copy of /bin/sh under that name plays the service manager. It starts the node, prints the
    /// node's pid, and sends it SIGTERM when a line arrives on its stdin, like `systemctl stop`.
    /// </summary>
    [Fact]
    public async Task Under_systemd_a_node_reports_READY_once_it_listens_and_STOPPING_on_SIGTERM()
    {
        if (!OperatingSystem.IsLinux()) return; // systemd is Linux only
        var manager = Path.Combine(_dir, "systemd");
        File.Copy("/bin/sh", manager);
        File.SetUnixFileMode(manager, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        var port = ServerProcess.FreePorts(1)[0];
        ServerProcess.WriteConfig(_dir, [(0, port)]);

        var socketPath = Path.Combine(_dir, "notify.sock");
        using var notify = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        notify.Bind(new UnixDomainSocketEndPoint(socketPath));

        var start = new ProcessStartInfo(manager)
        {
            WorkingDirectory = _dir,
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("\"$0\" \"$@\" & pid=$!; echo \"pid=$pid\"; read line; kill -TERM $pid; wait $pid; echo \"exit=$?\"");
        if (ServerProcess.Server.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
        {
            start.ArgumentList.Add("dotnet");
        }
        start.ArgumentList.Add(ServerProcess.Server);
        foreach (var arg in new[] { "0", "--config", "config.conf", "--data-dir", "data", "--quiet" }) start.ArgumentList.Add(arg);
        start.Environment["NOTIFY_SOCKET"] = socketPath;

        using var shell = Process.Start(start)!;
        var output = new StringBuilder();
        shell.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        shell.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        shell.BeginOutputReadLine();
        shell.BeginErrorReadLine();
        try
        {
            Assert.Equal("READY=1", await ReceiveAsync(notify, TimeSpan.FromSeconds(30)));
            // Ready means listening: a connection to the node's port succeeds now.
            using (var client = new TcpClient())
                await client.ConnectAsync(IPAddress.Loopback, port);

            shell.StandardInput.WriteLine("stop");
            shell.StandardInput.Flush();
            Assert.Equal("STOPPING=1", await ReceiveAsync(notify, TimeSpan.FromSeconds(30)));
            using var exit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await shell.WaitForExitAsync(exit.Token);
            shell.WaitForExit();
            string text;
            lock (output) text = output.ToString();
            Assert.Contains("The server starts at 127.0.0.1:" + port, text);
            Assert.Contains("exit=0", text);
        }
        finally
        {
            if (!shell.HasExited) shell.Kill(entireProcessTree: true);
        }
    }

    private static async Task<string> ReceiveAsync(Socket socket, TimeSpan timeout)
    {
        var buffer = new byte[512];
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
            return Encoding.ASCII.GetString(buffer, 0, n).Trim();
        }
        catch (OperationCanceledException)
        {
            return $"(no notification within {timeout.TotalSeconds} s)";
        }
    }

    [Fact]
    public async Task Log_file_takes_the_output_and_a_bad_config_line_goes_there_too()
    {
        var port = ServerProcess.FreePorts(1)[0];
        ServerProcess.WriteConfig(_dir, [(0, port)]);
        var logPath = Path.Combine(_dir, "logs", "node-0.log");

        using (var node = ServerProcess.Start(0, _dir, "0", "--data-dir", "data", "--log-file", logPath))
        {
            var clock = Stopwatch.StartNew();
            while (!(File.Exists(logPath) && ReadShared(logPath).Contains("I am a leader. Term: 1", StringComparison.Ordinal)))
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), "the log file never said the node leads: " + (File.Exists(logPath) ? ReadShared(logPath) : "(no file)"));
                Assert.False(node.HasExited, "the node exited: " + node.Output);
                await Task.Delay(50);
            }
            Assert.Contains($"The server starts at 127.0.0.1:{port}", ReadShared(logPath));
            Assert.Equal("", node.Output); // nothing on stdout or stderr
        }

        File.WriteAllText(Path.Combine(_dir, "bad.conf"), "0 127.0.0.1\n");
        using var bad = ServerProcess.Start(0, _dir, "0", "--config", "bad.conf", "--log-file", logPath);
        Assert.Equal(2, await bad.WaitForExit(TimeSpan.FromSeconds(30)));
        Assert.Contains("bad.conf:1: expected 'ID HOST PORT'", ReadShared(logPath));
    }

    private static string ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        return new StreamReader(stream).ReadToEnd();
    }
}
