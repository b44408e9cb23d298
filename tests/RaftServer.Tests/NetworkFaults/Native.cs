using System.ComponentModel;
using System.Runtime.InteropServices;

namespace RaftServer.Tests.NetworkFaults;

/// <summary>
/// The few Linux calls the network lab needs that .NET does not offer: entering a network
/// namespace on one thread (setns), and a TUN device's file descriptor (open, ioctl, poll, read,
/// write) for the user-space delay and loss relay.
/// </summary>
internal static class Native
{
    private const int CloneNewNet = 0x40000000;
    private const int ORdWr = 0x2, OCloExec = 0x80000;
    private const ulong TunSetIff = 0x400454ca;
    private const short IffTun = 0x0001, IffNoPi = 0x1000;
    private const short PollIn = 0x1;
    private const int EIntr = 4, EAgain = 11;

    [DllImport("libc", SetLastError = true)]
    private static extern int setns(int fd, int nstype);

    [DllImport("libc", SetLastError = true)]
    private static extern int open(string path, int flags);

    [DllImport("libc", SetLastError = true)]
    private static extern int close(int fd);

    [DllImport("libc", SetLastError = true)]
    private static extern int ioctl(int fd, ulong request, [In, Out] byte[] arg);

    [DllImport("libc", SetLastError = true)]
    private static extern nint read(int fd, [Out] byte[] buffer, nint count);

    [DllImport("libc", SetLastError = true)]
    private static extern nint write(int fd, [In] byte[] buffer, nint count);

    [DllImport("libc", SetLastError = true)]
    private static extern int poll([In, Out] PollFd[] fds, nuint count, int timeoutMs);

    [DllImport("libc")]
    private static extern uint geteuid();

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    public static bool IsRoot => OperatingSystem.IsLinux() && geteuid() == 0;

    /// <summary>Moves the calling thread (only it) into the network namespace named <paramref name="name"/> (ip netns).</summary>
    public static void EnterNetworkNamespace(string name)
    {
        var fd = open($"/var/run/netns/{name}", OCloExec);
        if (fd < 0) throw new Win32Exception(Marshal.GetLastWin32Error(), $"open /var/run/netns/{name}");
        try
        {
            if (setns(fd, CloneNewNet) != 0) throw new Win32Exception(Marshal.GetLastWin32Error(), $"setns into {name}");
        }
        finally
        {
            close(fd);
        }
    }

    /// <summary>Opens (creating it if needed) the TUN device <paramref name="name"/> in the calling thread's namespace; returns its descriptor.</summary>
    public static int OpenTun(string name)
    {
        var fd = open("/dev/net/tun", ORdWr | OCloExec);
        if (fd < 0) throw new Win32Exception(Marshal.GetLastWin32Error(), "open /dev/net/tun");
        var ifr = new byte[40]; // struct ifreq: a 16-byte name, then the flags
        System.Text.Encoding.ASCII.GetBytes(name).CopyTo(ifr, 0);
        BitConverter.GetBytes((short)(IffTun | IffNoPi)).CopyTo(ifr, 16);
        if (ioctl(fd, TunSetIff, ifr) != 0)
        {
            var error = Marshal.GetLastWin32Error();
            close(fd);
            throw new Win32Exception(error, $"TUNSETIFF {name}");
        }
        return fd;
    }

    /// <summary>Waits up to <paramref name="timeoutMs"/> for a packet; then reads one. 0 when none came.</summary>
    public static int ReadPacket(int fd, byte[] buffer, int timeoutMs)
    {
        var fds = new[] { new PollFd { Fd = fd, Events = PollIn } };
        var ready = poll(fds, 1, timeoutMs);
        if (ready < 0)
        {
            var error = Marshal.GetLastWin32Error();
            if (error == EIntr) return 0;
            throw new Win32Exception(error, "poll on a TUN device");
        }
        if (ready == 0) return 0;
        var n = read(fd, buffer, buffer.Length);
        if (n < 0)
        {
            var error = Marshal.GetLastWin32Error();
            if (error is EIntr or EAgain) return 0;
            throw new Win32Exception(error, "read from a TUN device");
        }
        return (int)n;
    }

    /// <summary>Hands one IP packet to the kernel as if it arrived on the TUN device.</summary>
    public static void WritePacket(int fd, byte[] packet)
    {
        // A packet the kernel refuses (its namespace is going away) is a lost packet: nothing to do.
        _ = write(fd, packet, packet.Length);
    }

    public static void Close(int fd) => close(fd);
}
