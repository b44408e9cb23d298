using System.Runtime.InteropServices;

namespace RaftServer.Storage;

/// <summary>The file-system steps that make a write survive a crash.</summary>
internal static class DurableFiles
{
    /// <summary>
    /// Renames a complete, fsynced <paramref name="tempPath"/> to <paramref name="finalPath"/>
    /// (replacing it: rename is atomic, so a reader sees the old file or the new one, never a
    /// mix) and makes the rename durable.
    /// </summary>
    public static void Install(string tempPath, string finalPath) => Rename(tempPath, finalPath, overwrite: true);

    /// <summary>
    /// Renames a complete, fsynced <paramref name="tempPath"/> to <paramref name="finalPath"/> unless
    /// a file of that name exists (checked and renamed in one step), and makes the rename durable.
    /// False (and <paramref name="tempPath"/> left as it is) when <paramref name="finalPath"/> exists.
    /// </summary>
    public static bool InstallNew(IDisk disk, string tempPath, string finalPath)
    {
        try
        {
            disk.Rename(tempPath, finalPath, overwrite: false);
            return true;
        }
        catch (IOException) when (File.Exists(finalPath) && File.Exists(tempPath))
        {
            return false;
        }
    }

    /// <summary>
    /// Renames <paramref name="source"/> to <paramref name="destination"/> and makes the rename
    /// durable: Linux fsyncs the directory; Windows has no directory to fsync, so the move is made
    /// with MOVEFILE_WRITE_THROUGH, which returns once the rename is on disk. The source may be
    /// open, on Windows only by handles that share delete access (FileShare.Delete).
    /// </summary>
    public static void Rename(string source, string destination, bool overwrite)
    {
        if (OperatingSystem.IsWindows())
        {
            var flags = MoveFileWriteThrough | (overwrite ? MoveFileReplaceExisting : 0u);
            if (!WindowsNative.MoveFileExW(source, destination, flags))
            {
                var error = Marshal.GetLastPInvokeError();
                throw new IOException($"cannot rename {source} to {destination}: {Marshal.GetPInvokeErrorMessage(error)}", Marshal.GetHRForLastWin32Error());
            }
            return;
        }
        File.Move(source, destination, overwrite);
        SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(destination))!);
    }

    private const uint MoveFileReplaceExisting = 0x1;
    private const uint MoveFileWriteThrough = 0x8;

    private static readonly byte[] Zeros = new byte[1 << 20];

    /// <summary>Writes <paramref name="count"/> zero bytes at <paramref name="file"/>'s position (not flushed).</summary>
    public static void WriteZeros(Stream file, long count)
    {
        for (long written = 0; written < count; written += Zeros.Length)
            file.Write(Zeros, 0, (int)Math.Min(Zeros.Length, count - written));
    }

    /// <summary>Deletes <paramref name="path"/> if it exists; a file that is already gone is not an error.</summary>
    public static void DeleteIfExists(string path)
    {
        try { File.Delete(path); }
        catch (DirectoryNotFoundException) { }
    }

    /// <summary>
    /// Makes a new, renamed or deleted file's directory entry durable (Linux: fsync on the
    /// directory). A directory that cannot be opened or synced throws, as a failed fsync of the log
    /// does: the node stops rather than go on believing a file is durable that may not be.
    /// </summary>
    /// <exception cref="IOException">open or fsync of the directory failed.</exception>
    public static void SyncDirectory(string dir)
    {
        if (!OperatingSystem.IsLinux()) return;
        var fd = Native.open(dir, 0 /* O_RDONLY */);
        if (fd < 0) throw LastError($"cannot open the directory {dir} to sync it");
        try
        {
            if (Native.fsync(fd) != 0) throw LastError($"fsync of the directory {dir} failed");
        }
        finally
        {
            Native.close(fd);
        }
    }

    /// <summary>Whether sync_file_range works here (a file system without it says so once; then nothing is asked of it).</summary>
    private static volatile bool _writebackUnsupported = !OperatingSystem.IsLinux();

    /// <summary>
    /// Linux: sync_file_range(2) on the range, SYNC_FILE_RANGE_WRITE to start its writeback, with
    /// WAIT_BEFORE and WAIT_AFTER to wait for it too. Elsewhere, or on a file system that does not
    /// support it, nothing (the closing fsync writes everything, as it did before).
    /// </summary>
    /// <exception cref="IOException">the kernel failed the writeback (EIO, ENOSPC): as a failed fsync, fatal.</exception>
    public static void StartWriteback(FileStream file, long offset, long count, bool waitForIt)
    {
        if (_writebackUnsupported || count <= 0) return;
        uint flags = SyncFileRangeWrite | (waitForIt ? SyncFileRangeWaitBefore | SyncFileRangeWaitAfter : 0u);
        if (Native.sync_file_range((int)file.SafeFileHandle.DangerousGetHandle(), offset, count, flags) == 0) return;
        var error = Marshal.GetLastPInvokeError();
        if (error is Enosys or Eopnotsupp or Espipe)
        {
            _writebackUnsupported = true;
            return;
        }
        throw new IOException($"writeback of {file.Name} failed: {Marshal.GetPInvokeErrorMessage(error)}", error);
    }

    private const uint SyncFileRangeWaitBefore = 1, SyncFileRangeWrite = 2, SyncFileRangeWaitAfter = 4;
    private const int Espipe = 29, Enosys = 38, Eopnotsupp = 95;

    private static IOException LastError(string what)
    {
        var error = Marshal.GetLastPInvokeError();
        return new IOException($"{what}: {Marshal.GetPInvokeErrorMessage(error)}", error);
    }

    private static class WindowsNative
    {
        [DllImport("kernel32.dll", SetLastError = true, CharSet = CharSet.Unicode, ExactSpelling = true)]
        [return: MarshalAs(UnmanagedType.Bool)]
        public static extern bool MoveFileExW(string existingFileName, string newFileName, uint flags);
    }

    private static class Native
    {
        [DllImport("libc", SetLastError = true)]
        public static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);
        [DllImport("libc", SetLastError = true)]
        public static extern int fsync(int fd);
        [DllImport("libc", SetLastError = true)]
        public static extern int close(int fd);
        [DllImport("libc", SetLastError = true)]
        public static extern int sync_file_range(int fd, long offset, long nbytes, uint flags);
    }
}
