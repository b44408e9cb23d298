using System.IO;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;

namespace RaftPS.Client;

/// <summary>
/// Turns a failed call into a clear TLS or authentication error: a plain-text connection to a node
/// that serves clients over TLS (the node says so), a TLS connection to a plain-text node, a node
/// certificate not trusted, a client certificate refused (a probe finds out which), a missing or
/// unknown token, a role too small. Anything else is left to the caller's retries.
/// </summary>
internal static class TlsDiagnosis
{
    public const string TlsRequiredTrailer = "raftps-tls-required";
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(3);

    /// <summary>The error for a call that failed this way, or null when it is not a security failure (retry as usual).</summary>
    public static async Task<RaftException?> ClassifyAsync(Exception failure, RaftConnection connection, RaftEndpoint target, string operation)
    {
        if (failure is RpcException rpc)
        {
            switch (rpc.StatusCode)
            {
                case StatusCode.Unauthenticated when rpc.Trailers.GetValue(TlsRequiredTrailer) is not null:
                    return new RaftException(RaftErrorKind.TlsRequired,
                        $"{operation}: the node at {target} speaks TLS; connect with -UseTls (Connect-RaftNode {target.Host} {target.Port} -UseTls).", rpc);
                case StatusCode.Unauthenticated:
                    return new RaftException(RaftErrorKind.Unauthenticated, $"{operation}: node {target} refused the call: {rpc.Status.Detail}", rpc);
                case StatusCode.PermissionDenied:
                    return new RaftException(RaftErrorKind.PermissionDenied, $"{operation}: node {target} refused the call: {rpc.Status.Detail}", rpc);
            }
            if (rpc.Status.DebugException is null) return null;
        }
        // A transport failure on a TLS connection: find out whether TLS itself is the reason.
        if (connection.Security is not { UseTls: true } security) return null;
        var problem = await ProbeAsync(target, security).ConfigureAwait(false);
        return problem is null ? null : new RaftException(RaftErrorKind.TlsFailed, $"{operation}: {problem}", failure);
    }

    /// <summary>
    /// Opens a TLS connection to the node as the client does and says what goes wrong: null when
    /// the node cannot be reached at all (the usual retry) or when TLS works.
    /// </summary>
    internal static async Task<string?> ProbeAsync(RaftEndpoint target, ConnectionSecurity security)
    {
        using var timeout = new CancellationTokenSource(ProbeTimeout);
        using var tcp = new TcpClient();
        try
        {
            await tcp.ConnectAsync(target.Host, target.Port, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return null;
        }
        X509Certificate2? seen = null;
        X509Chain? seenChain = null;
        var seenErrors = SslPolicyErrors.None;
        using var ssl = new SslStream(tcp.GetStream(), leaveInnerStreamOpen: false);
        try
        {
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = target.Host,
                ApplicationProtocols = [SslApplicationProtocol.Http2],
                ClientCertificates = security.ClientCertificate is null ? null : new X509CertificateCollection { security.ClientCertificate },
                RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
                {
                    seen = certificate is null ? null : new X509Certificate2(certificate);
                    if (chain is not null)
                    {
                        seenChain = new X509Chain();
                        seenChain.ChainPolicy = chain.ChainPolicy;
                        if (seen is not null) seenChain.Build(seen);
                    }
                    seenErrors = errors;
                    return true; // judged below, where the reason can be told
                },
            }, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException)
        {
            if (await ServesPlainTextAsync(target).ConfigureAwait(false))
                return $"the node at {target} does not speak TLS (it serves clients in plain text); connect without -UseTls.";
            return $"the TLS handshake with node {target} failed: {Messages(e)}.";
        }
        using (seen)
        using (seenChain)
        {
            if (security.ProblemWith(seen, seenChain, seenErrors) is { } problem)
                return $"the TLS connection to node {target} was refused here: {problem}.";
        }
        // The node's certificate is good. With TLS 1.3 a node refuses a client certificate only after
        // the handshake: see whether it keeps the connection and speaks HTTP/2 on it.
        try
        {
            await WritePrefaceAsync(ssl, timeout.Token).ConfigureAwait(false);
            if (await ReadsSettingsAsync(ssl, timeout.Token).ConfigureAwait(false)) return null;
            return $"node {target} closed the TLS connection after the handshake: it requires a client certificate issued by its CA (--client-ca-file) " +
                   $"and valid now{(security.ClientCertificate is null ? "; none was given (-Certificate, -CertificatePath or -CertificateThumbprint)" : $"; {security.ClientCertificate.Subject} (valid {security.ClientCertificate.NotBefore:yyyy-MM-dd} to {security.ClientCertificate.NotAfter:yyyy-MM-dd}) was refused")}.";
        }
        catch (Exception e) when (e is IOException or AuthenticationException or ObjectDisposedException or OperationCanceledException)
        {
            return $"node {target} refused the TLS connection after the handshake ({Messages(e)}): it requires a client certificate issued by its CA (--client-ca-file) and valid now" +
                   (security.ClientCertificate is null ? "; none was given (-Certificate, -CertificatePath or -CertificateThumbprint)." : $"; {security.ClientCertificate.Subject} was refused.");
        }
    }

    /// <summary>
    /// Whether the node serves the client service in plain text: a plain call answered by the
    /// node itself (any status but the TLS-required refusal). A node with client TLS also answers
    /// plain HTTP/2 on its port (its peers' calls), so the HTTP/2 preface alone tells nothing.
    /// </summary>
    internal static async Task<bool> ServesPlainTextAsync(RaftEndpoint target)
    {
        try
        {
            await ChannelCache.Get(target).GetLeaderAsync(new RaftPS.Protocol.GetLeaderRequest(), deadline: DateTime.UtcNow + ProbeTimeout).ResponseAsync.ConfigureAwait(false);
            return true;
        }
        catch (RpcException e)
        {
            return e.Status.DebugException is null && e.Trailers.GetValue(TlsRequiredTrailer) is null && e.StatusCode != StatusCode.DeadlineExceeded;
        }
    }

    private static async Task WritePrefaceAsync(Stream stream, CancellationToken cancellation)
    {
        await stream.WriteAsync("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray(), cancellation).ConfigureAwait(false);
        await stream.WriteAsync(new byte[] { 0, 0, 0, 4, 0, 0, 0, 0, 0 }, cancellation).ConfigureAwait(false); // an empty SETTINGS frame
        await stream.FlushAsync(cancellation).ConfigureAwait(false);
    }

    /// <summary>Reads the first frame header: true when it is a SETTINGS frame (every HTTP/2 server's first frame).</summary>
    private static async Task<bool> ReadsSettingsAsync(Stream stream, CancellationToken cancellation)
    {
        var head = new byte[9];
        var got = 0;
        while (got < head.Length)
        {
            var n = await stream.ReadAsync(head.AsMemory(got), cancellation).ConfigureAwait(false);
            if (n == 0) return false;
            got += n;
        }
        return head[3] == 4;
    }

    private static string Messages(Exception e)
    {
        var text = e.Message;
        for (var inner = e.InnerException; inner is not null; inner = inner.InnerException) text = $"{text} ({inner.Message})";
        return text;
    }
}
