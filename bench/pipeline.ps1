#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Measures the PowerShell pipeline: Import-Csv of a Key,Value file piped into Set-RaftValue.
.DESCRIPTION
    Called by bench/run.sh in a fresh `dotnet pwsh`; prints one JSON line (kind "pipeline") with the
    rows written, the seconds the pipeline took, writes per second, the client process's CPU time
    and the machine's load average. The measured pass is the first full one in a fresh process
    (after a 200-row warm-up), so it includes the JIT warming up PowerShell and the module.
#>
param(
    [Parameter(Mandatory)] [string] $Manifest,
    [Parameter(Mandatory)] [string] $Address,
    [Parameter(Mandatory)] [int] $Port,
    [Parameter(Mandatory)] [string] $Csv,
    [int] $Round = 1,
    [string] $Label = 'raftps',
    # Passes of the same file after the measured one, each printed as kind "pipeline-repeat" (which
    # the report does not count): the steady state of a session whose JIT has warmed up.
    [int] $Repeat = 0
)
$ErrorActionPreference = 'Stop'
Import-Module $Manifest
Connect-RaftNode -Address $Address -Port $Port | Out-Null

# Warm the cmdlet and the connection (JIT, HTTP/2 connection) outside the measurement.
Import-Csv $Csv | Select-Object -First 200 | Set-RaftValue

$rows = @(Import-Csv $Csv).Count
# The client's own CPU (every thread of this process: the pipeline thread, the thread pool's gRPC
# calls and the JIT compiling PowerShell and the module as they warm up) and the machine's load:
# on a shared 2-core machine the ops/s mean little without them.
$self = Get-Process -Id $PID
for ($pass = 0; $pass -le $Repeat; $pass++) {
    $cpu = $self.TotalProcessorTime
    $sw = [Diagnostics.Stopwatch]::StartNew()
    Import-Csv $Csv | Set-RaftValue
    $sw.Stop()
    $self.Refresh()
    $cpuSeconds = ($self.TotalProcessorTime - $cpu).TotalSeconds
    $load = if (Test-Path /proc/loadavg) { [double]((Get-Content /proc/loadavg) -split ' ')[0] } else { $null }

    [ordered]@{
        kind = $(if ($pass -eq 0) { 'pipeline' } else { 'pipeline-repeat' }); label = $Label; round = $Round; pass = $pass + 1; rows = $rows
        seconds = [math]::Round($sw.Elapsed.TotalSeconds, 3)
        ops_per_s = [math]::Round($rows / $sw.Elapsed.TotalSeconds, 1)
        client_cpu_s = [math]::Round($cpuSeconds, 3)
        client_cpu_us_per_write = [math]::Round($cpuSeconds * 1e6 / $rows, 1)
        load_avg_1m = $load
    } | ConvertTo-Json -Compress
}
