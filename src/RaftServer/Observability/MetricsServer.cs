using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace RaftServer.Observability;

/// <summary>
/// The opt-in metrics listener (<c>--metrics-address HOST:PORT</c>): <c>GET /metrics</c> in the
/// Prometheus text format (OpenMetrics when the scraper asks for it), served by OpenTelemetry's
/// Prometheus exporter from the instruments of <see cref="NodeMetrics.MeterName"/> and the
/// runtime's own <c>System.Runtime</c> meter (process memory, CPU, GC, thread pool). Its own small
/// Kestrel server on its own port (HTTP/1.1): a scrape never shares a connection, a listener or a
/// thread with the Raft port.
/// </summary>
public sealed class MetricsServer(WebApplication app) : IAsyncDisposable
{
    public const string Path = "/metrics";

    /// <summary>Where it listens (the port is the one bound when 0 was asked for).</summary>
    public IReadOnlyList<string> Addresses => app.Urls.ToArray();

    /// <exception cref="IOException">the port is in use or cannot be bound.</exception>
    public static async Task<MetricsServer> StartAsync(IPEndPoint endpoint, int nodeId, ILoggerFactory loggers)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseKestrelCore();
        builder.Services.AddLogging();
        builder.Services.AddSingleton(loggers);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(1));
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("raftps", serviceInstanceId: nodeId.ToString(System.Globalization.CultureInfo.InvariantCulture)))
            .WithMetrics(m => m
                .AddMeter(NodeMetrics.MeterName, "System.Runtime")
                // Every scrape sees the values of that moment (the exporter caches 300 ms by default).
                .AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0));
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Listen(endpoint, o => o.Protocols = HttpProtocols.Http1);
        });
        var app = builder.Build();
        app.UseOpenTelemetryPrometheusScrapingEndpoint(Path);
        await app.StartAsync();
        return new MetricsServer(app);
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
}
