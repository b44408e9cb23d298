using RaftServer.Storage;

namespace RaftServer.Tests.Storage;

public sealed class WalSegmentPreparerTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "raftps-tests", "walp-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly ListLogger _logger = new();

    public WalSegmentPreparerTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    [Fact]
    public void The_file_handed_over_has_the_full_size_in_zeros_and_closing_removes_a_file_not_taken()
    {
        const int bytes = (3 << 20) + 1000; // not a whole number of the 1 MiB chunks it writes
        using (var preparer = new WalSegmentPreparer(_dir, bytes, _logger))
        {
            var path = preparer.Take();
            Assert.NotNull(path);
            var content = File.ReadAllBytes(path);
            Assert.Equal(bytes, content.Length);
            Assert.True(content.AsSpan().IndexOfAnyExcept((byte)0) < 0);
            File.Move(path, Path.Combine(_dir, "taken")); // what the log does with it

            preparer.Begin(); // the next one, never taken
        }
        Assert.Equal(["taken"], Directory.GetFiles(_dir).Select(Path.GetFileName));
        Assert.Empty(_logger.Warnings);
    }

    [Fact]
    public void A_file_that_cannot_be_made_is_reported_and_the_log_is_told_to_append_instead()
    {
        var missing = Path.Combine(_dir, "gone");
        using var preparer = new WalSegmentPreparer(missing, 4096, _logger);
        Assert.Null(preparer.Take());
        Assert.Contains(_logger.Warnings, w => w.Contains(Path.Combine(missing, WalSegmentPreparer.FileName)) && w.Contains("could not pre-allocate"));
    }
}
