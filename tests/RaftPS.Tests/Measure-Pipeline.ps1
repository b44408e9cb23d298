<#
.SYNOPSIS
    Measures Set-RaftValue (and Get-RaftValue) fed a long pipeline: ops/s on a fresh local cluster.
.DESCRIPTION
    Not a test (not *.Tests.ps1): run it by hand after a build, in a fresh process:
        dotnet pwsh tests/RaftPS.Tests/Measure-Pipeline.ps1 [-Count 10000] [-Runs 3]
    It starts a three-node cluster on free ports in a temporary folder (servers with --quiet),
    connects to the leader, writes a Key,Value CSV of -Count rows and pipes `Import-Csv` of it into
    Set-RaftValue (the issue's target) -Runs times, then the same rows as [pscustomobject]s, then
    reads them back through Get-RaftValue, and stops the cluster.
    Beside each figure: the client process's CPU time per op (on Linux split into PowerShell's
    pipeline thread, the thread pool that runs the gRPC calls, and the JIT's background thread),
    the servers' CPU time per op, and the load average. The first run of a fresh process pays for
    the JIT warming up PowerShell, gRPC and the module; later runs show the steady state. On a
    shared machine read the CPU per op first: ops/s follow whatever else the machine is doing.
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
    $csv = Join-Path $config.Directory 'kv.csv'
    $rows | Export-Csv $csv -NoTypeInformation
    $rows | Select-Object -First 500 | Set-RaftValue   # warm up (JIT, connections)

    $self = Get-Process -Id $PID
    $linux = Test-Path "/proc/$PID/task"
    # CPU seconds of this process's threads, by kind (Linux: /proc/<pid>/task/<tid>/stat, in ticks
    # of 1/100 s; threads that end between two readings drop out, so the split is approximate).
    function Get-ThreadCpu {
        $cpu = @{ pipeline = 0.0; pool = 0.0; jit = 0.0 }
        if (-not $linux) { return $cpu }
        foreach ($task in Get-ChildItem "/proc/$PID/task") {
            $stat = Get-Content "$($task.FullName)/stat" -Raw -ErrorAction SilentlyContinue
            if (-not $stat) { continue }
            $name = $stat.Substring($stat.IndexOf('(') + 1, $stat.LastIndexOf(')') - $stat.IndexOf('(') - 1)
            $fields = $stat.Substring($stat.LastIndexOf(')') + 2).Split(' ')
            $seconds = ([double]$fields[11] + [double]$fields[12]) / 100
            if ($name -like 'Pipeline*') { $cpu.pipeline += $seconds }
            elseif ($name -like '*TP Worker*') { $cpu.pool += $seconds }
            elseif ($name -like '*Tiered*') { $cpu.jit += $seconds }
        }
        $cpu
    }
    function Get-ServerCpu {
        if (-not $linux) { return 0.0 }
        $total = 0.0
        foreach ($node in $nodes) {
            $stat = Get-Content "/proc/$($node.ProcessId)/stat" -Raw -ErrorAction SilentlyContinue
            if ($stat) { $fields = $stat.Substring($stat.LastIndexOf(')') + 2).Split(' '); $total += ([double]$fields[11] + [double]$fields[12]) / 100 }
        }
        $total
    }
    function Measure-Step([string] $Label, [scriptblock] $Step) {
        $self.Refresh(); $cpu = $self.TotalProcessorTime; $threads = Get-ThreadCpu; $servers = Get-ServerCpu
        $elapsed = Measure-Command $Step
        $self.Refresh(); $threadsAfter = Get-ThreadCpu; $serversAfter = Get-ServerCpu
        $perOp = { param($seconds) $seconds * 1e6 / $Count }
        $line = '{0,-32} {1,6} ops in {2,6:0.00} s = {3,6:0} ops/s; client CPU {4,4:0} us/op' -f $Label, $Count, $elapsed.TotalSeconds,
            ($Count / $elapsed.TotalSeconds), (& $perOp ($self.TotalProcessorTime - $cpu).TotalSeconds)
        if ($linux) {
            $line += ' (pipeline thread {0:0}, thread pool {1:0}, JIT {2:0}); servers {3:0} us/op; load {4}' -f (& $perOp ($threadsAfter.pipeline - $threads.pipeline)),
                (& $perOp ($threadsAfter.pool - $threads.pool)), (& $perOp ($threadsAfter.jit - $threads.jit)), (& $perOp ($serversAfter - $servers)),
                ((Get-Content /proc/loadavg) -split ' ')[0]
        }
        $line
    }
    for ($run = 1; $run -le $Runs; $run++) { Measure-Step "Import-Csv | Set-RaftValue, run $run" { Import-Csv $csv | Set-RaftValue } }
    Measure-Step 'objects | Set-RaftValue' { $rows | Set-RaftValue }
    Measure-Step 'objects | Get-RaftValue' { $rows | Get-RaftValue | Out-Null }
} finally {
    Remove-TestCluster $config
}
