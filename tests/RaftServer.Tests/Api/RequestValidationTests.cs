using Grpc.Core;
using RaftServer.Api;

namespace RaftServer.Tests.Api;

public sealed class RequestValidationTests
{
    private static void Invalid(Action a, string text)
    {
        var e = Assert.Throws<RpcException>(a);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains(text, e.Status.Detail);
    }

    [Fact]
    public void Keys_must_be_non_empty_and_at_most_1_KiB_of_UTF8()
    {
        RequestValidation.Key("k");
        RequestValidation.Key(new string('k', 1024));
        Invalid(() => RequestValidation.Key(""), "empty");
        Invalid(() => RequestValidation.Key(new string('k', 1025)), "1025 bytes");
        Invalid(() => RequestValidation.Key(new string('é', 513)), "1026 bytes"); // 2 bytes each in UTF-8
    }

    [Fact]
    public void Values_are_at_most_1_MiB_and_limits_are_defaulted_and_capped()
    {
        RequestValidation.Value(1 << 20);
        Invalid(() => RequestValidation.Value((1 << 20) + 1), "1 MiB");
        Assert.Equal(1000, RequestValidation.Limit(0));
        Assert.Equal(5, RequestValidation.Limit(5));
        Assert.Equal(10000, RequestValidation.Limit(int.MaxValue));
        Invalid(() => RequestValidation.Limit(-1), "negative");
        Invalid(() => RequestValidation.Prefix(new string('p', 1025), ""), "prefix");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(double.NaN)]
    [InlineData(1e9)]
    public void Suspend_needs_a_positive_bounded_period(double seconds) =>
        Invalid(() => RequestValidation.SuspendSeconds(seconds), "suspend period");
}
