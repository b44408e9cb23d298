# Shared by the Pester files (dot-sourced in BeforeAll): import the built module, make a
# temporary cluster config on free ports, and wait on conditions with a timeout.

$script:RepoRoot = (Resolve-Path "$PSScriptRoot/../..").Path
Import-Module (Join-Path $script:RepoRoot 'RaftPS.psd1') -Force

function Get-FreePort {
    # Bind port 0 and let the OS choose; released at once for the server to take.
    $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
    $listener.Start()
    try { $listener.LocalEndpoint.Port } finally { $listener.Stop() }
}

function New-TestClusterConfig {
    param([int] $Nodes = 3, [string[]] $ExtraLines = @(), [string] $HostAddress = '127.0.0.1')
    $directory = Join-Path ([IO.Path]::GetTempPath()) "raftps-test-$([guid]::NewGuid().ToString('n').Substring(0, 8))"
    New-Item -ItemType Directory -Path $directory | Out-Null
    $ports = @(); while ($ports.Count -lt $Nodes) { $p = Get-FreePort; if ($p -notin $ports) { $ports += $p } }
    $lines = for ($i = 0; $i -lt $Nodes; $i++) { "$i $HostAddress $($ports[$i])" }
    $configPath = Join-Path $directory 'config.conf'
    @($lines) + $ExtraLines | Set-Content -Path $configPath
    [pscustomobject]@{
        Directory     = $directory
        ConfigPath    = $configPath
        DataDirectory = Join-Path $directory 'data'
        Ports         = $ports
    }
}

function Remove-TestCluster($Cluster) {
    if (-not $Cluster) { return }
    Stop-RaftCluster -ConfigPath $Cluster.ConfigPath -ErrorAction SilentlyContinue
    Remove-Item $Cluster.Directory -Recurse -Force -ErrorAction SilentlyContinue
}

function Wait-Until([scriptblock] $Condition, [double] $TimeoutSec = 15, [string] $Because = 'the condition') {
    $clock = [Diagnostics.Stopwatch]::StartNew()
    while ($clock.Elapsed.TotalSeconds -lt $TimeoutSec) {
        try { if (& $Condition) { return } } catch { }
        Start-Sleep -Milliseconds 100
    }
    throw "Timed out after $TimeoutSec s waiting for $Because"
}
