<#
.SYNOPSIS
    Measures Set-RaftValue (and Get-RaftValue) fed a long pipeline: ops/s on a fresh local cluster.
.DESCRIPTION
    Not a test (not *.Tests.ps1): run it by hand after a build, in a fresh process:
        dotnet pwsh tests/RaftPS.Tests/Measure-Pipeline.ps1 [-Count 10000] [-Runs 3]
    It starts a three-node cluster on free ports in a temporary folder (servers with --quiet),
    connects to the leader, pipes -Count [pscustomobject]@{Key; Value} rows into Set-RaftValue
    (bound by property name) -Runs times, then reads them back through Get-RaftValue, and stops
    the cluster. The client process's CPU time is printed beside each figure.
#>
param([int] $Count = 10000, [int] $Runs = 3)
$ErrorActionPreference = 'Stop'
. "$PSScriptRoot/TestHelpers.ps1"
$env:RAFTPS_SERVER_ARGS = '--quiet'
$config = New-TestClusterConfig -Nodes 3
try {
    $nodes = Start-RaftCluster -ConfigPath $config.ConfigPath -DataDirectory $config.DataDirectory -TimeoutSec 60
    $leader = Get-RaftLeader -Connection $nodes[0]
    Connect-RaftNode $leader.Address $leader.Port | Out-Null
    $rows = 1..$Count | ForEach-Object { [pscustomobject]@{ Key = "key$_"; Value = "value $_" } }
    $rows | Select-Object -First 500 | Set-RaftValue   # warm up (JIT, connections)
    $self = Get-Process -Id $PID
    function Measure-Step([string] $Label, [scriptblock] $Step) {
        $self.Refresh(); $cpu = $self.TotalProcessorTime
        $elapsed = Measure-Command $Step
        $self.Refresh()
        '{0,-28} {1,6} ops in {2,6:0.00} s = {3,6:0} ops/s (client CPU {4:0.00} s)' -f $Label, $Count, $elapsed.TotalSeconds,
            ($Count / $elapsed.TotalSeconds), ($self.TotalProcessorTime - $cpu).TotalSeconds
    }
    for ($run = 1; $run -le $Runs; $run++) { Measure-Step "Set-RaftValue, run $run" { $rows | Set-RaftValue } }
    Measure-Step 'Get-RaftValue' { $rows | Get-RaftValue | Out-Null }
    "load average: $((Get-Content /proc/loadavg -ErrorAction SilentlyContinue) -split ' ' | Select-Object -First 3)"
} finally {
    Remove-TestCluster $config
}
