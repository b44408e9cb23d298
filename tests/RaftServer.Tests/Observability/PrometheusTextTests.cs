namespace RaftServer.Tests.Observability;

/// <summary>The test-side parser of the exposition format, on hand-written inputs.</summary>
public sealed class PrometheusTextTests
{
    private const string Sample = """
        # HELP http_requests_total The total number of HTTP requests.
        # TYPE http_requests_total counter
        http_requests_total{method="post",code="200"} 1027 1395066363000
        http_requests_total{method="post",code="400"}    3 1395066363000

        # A comment that is neither HELP nor TYPE.
        # HELP msdos_file_access_time_seconds A path with \\ and a quote.
        # TYPE msdos_file_access_time_seconds gauge
        msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9
        # TYPE metric_without_timestamp_and_labels untyped
        metric_without_timestamp_and_labels 12.47
        # TYPE http_request_duration_seconds histogram
        http_request_duration_seconds_bucket{le="0.05"} 24054
        http_request_duration_seconds_bucket{le="0.1"} 33444
        http_request_duration_seconds_bucket{le="+Inf"} 144320
        http_request_duration_seconds_sum 53423
        http_request_duration_seconds_count 144320
        # TYPE weird gauge
        weird{a="x"} NaN
        weird{a="y"} -Inf
        """;

    [Fact]
    public void Reads_the_examples_of_the_format_description()
    {
        var f = PrometheusText.Parse(Sample);
        Assert.Equal("counter", f["http_requests_total"].Type);
        Assert.Equal("The total number of HTTP requests.", f["http_requests_total"].Help);
        Assert.Equal([1027, 3], f["http_requests_total"].Samples.Select(s => s.Value));
        Assert.Equal("400", f["http_requests_total"].Samples[1].Label("code"));
        var path = f["msdos_file_access_time_seconds"].Samples.Single();
        Assert.Equal(@"C:\DIR\FILE.TXT", path.Label("path"));
        Assert.Equal("Cannot find file:\n\"FILE.TXT\"", path.Label("error"));
        Assert.Equal(1.458255915e9, path.Value);
        Assert.Equal(@"A path with \ and a quote.", f["msdos_file_access_time_seconds"].Help);
        Assert.Equal(12.47, f["metric_without_timestamp_and_labels"].Samples.Single().Value);
        Assert.Equal(5, f["http_request_duration_seconds"].Samples.Count);
        Assert.True(double.IsNaN(f["weird"].Samples[0].Value));
        Assert.Equal(double.NegativeInfinity, f["weird"].Samples[1].Value);
    }

    [Theory]
    [InlineData("# TYPE a gauge\na{b=\"c} 1", "unterminated")]
    [InlineData("# TYPE a gauge\na{b=\"c\"} one", "not a number")]
    [InlineData("# TYPE a gauge\na{b=\"\\x\"} 1", "unknown escape")]
    [InlineData("# TYPE a gauge\na{b=\"1\",b=\"2\"} 1", "twice")]
    [InlineData("a 1", "no TYPE")]
    [InlineData("# TYPE a gauge\na 1\n# TYPE a gauge", "after its samples")]
    [InlineData("# TYPE a sometype", "unknown type")]
    [InlineData("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1", "not cumulative")]
    [InlineData("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_count 2", "+Inf")]
    [InlineData("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3", "_count")]
    [InlineData("# TYPE h histogram\nh 3", "without _bucket")]
    [InlineData("# TYPE a gauge\na 1 2 3", "optional timestamp")]
    public void Rejects_what_is_not_the_format(string text, string reason)
    {
        var e = Assert.Throws<FormatException>(() => PrometheusText.Parse(text));
        Assert.Contains(reason, e.Message);
    }
}
