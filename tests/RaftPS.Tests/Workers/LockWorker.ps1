# One contender for Lock-RaftKey, run as its own process by Coordination.Tests.ps1. Each round it
# takes the lock, increments a shared counter by a read, a pause and a write (two holders at once
# would lose an increment), logs the critical section with its fencing token, and unlocks.
# -Hang: take the lock once, say so in -ReadyPath, and never let go (the test kills the process).
param(
    [Parameter(Mandatory)] [string] $RepoRoot,
    [Parameter(Mandatory)] [int] $Port,
    [Parameter(Mandatory)] [string] $Name,
    [Parameter(Mandatory)] [string] $LogPath,
    [int] $Rounds = 5,
    [int] $HoldMs = 50,
    [int] $TtlSec = 3,
    [switch] $Hang,
    [string] $ReadyPath
)
$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $RepoRoot 'RaftPS.psd1')
Connect-RaftNode 127.0.0.1 $Port | Out-Null

function Write-Log([string] $Text) {
    Add-Content -Path $LogPath -Value $Text
}

if ($Hang) {
    $lock = Lock-RaftKey $Name -TtlSec $TtlSec
    $null = Get-RaftValue counter -ErrorAction SilentlyContinue # read, never written back
    Write-Log "hang $($lock.Revision) $([DateTime]::UtcNow.Ticks)"
    Set-Content -Path $ReadyPath -Value $lock.Revision
    while ($true) { Start-Sleep -Seconds 1 }
}

for ($round = 1; $round -le $Rounds; $round++) {
    $lock = Lock-RaftKey $Name -TtlSec $TtlSec
    $start = [DateTime]::UtcNow.Ticks
    $current = Get-RaftValue counter -ErrorAction SilentlyContinue
    $count = if ($current) { [int] $current.Value } else { 0 }
    Start-Sleep -Milliseconds $HoldMs
    if (-not $lock.IsHeld) { throw "lost the lock before writing: $($lock.LostReason)" }
    Set-RaftValue counter ($count + 1)
    $end = [DateTime]::UtcNow.Ticks
    Write-Log "held $($lock.Revision) $start $end"
    $lock | Unlock-RaftKey
}
