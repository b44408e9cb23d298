#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Measures the PowerShell pipeline: Import-Csv of a Key,Value file piped into Set-RaftValue.
.DESCRIPTION
    Called by bench/run.sh in a fresh `dotnet pwsh`; prints one JSON line (kind "pipeline") with the
    rows written, the seconds the pipeline took and writes per second.
#>
param(
    [Parameter(Mandatory)] [string] $Manifest,
    [Parameter(Mandatory)] [string] $Address,
    [Parameter(Mandatory)] [int] $Port,
    [Parameter(Mandatory)] [string] $Csv,
    [int] $Round = 1,
    [string] $Label = 'raftps'
)
$ErrorActionPreference = 'Stop'
Import-Module $Manifest
Connect-RaftNode -Address $Address -Port $Port | Out-Null

# Warm the cmdlet and the connection (JIT, HTTP/2 connection) outside the measurement.
Import-Csv $Csv | Select-Object -First 200 | Set-RaftValue

$rows = @(Import-Csv $Csv).Count
$sw = [Diagnostics.Stopwatch]::StartNew()
Import-Csv $Csv | Set-RaftValue
$sw.Stop()

[ordered]@{
    kind = 'pipeline'; label = $Label; round = $Round; rows = $rows
    seconds = [math]::Round($sw.Elapsed.TotalSeconds, 3)
    ops_per_s = [math]::Round($rows / $sw.Elapsed.TotalSeconds, 1)
} | ConvertTo-Json -Compress
