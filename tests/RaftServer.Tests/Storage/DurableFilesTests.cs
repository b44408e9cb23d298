using RaftServer.Storage;

namespace RaftServer.Tests.Storage;

public sealed class DurableFilesTests
{
    [Fact]
    public void Syncing_a_directory_that_cannot_be_opened_is_an_error_not_a_silent_success()
    {
        if (!OperatingSystem.IsLinux()) return; // the directory fsync is Linux's; elsewhere it is a no-op by design
        var missing = Path.Combine(Path.GetTempPath(), "raftps-no-such-dir-" + Guid.NewGuid().ToString("N"));
        var e = Assert.Throws<IOException>(() => DurableFiles.SyncDirectory(missing));
        Assert.Contains(missing, e.Message);
    }

    [Fact]
    public void Syncing_an_existing_directory_succeeds()
    {
        var dir = Directory.CreateTempSubdirectory("raftps-sync-");
        try
        {
            DurableFiles.SyncDirectory(dir.FullName);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
