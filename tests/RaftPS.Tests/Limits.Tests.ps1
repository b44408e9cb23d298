# Request limits, admission control and the Suspend guard, through the cmdlets (docs/security.md).
# One node started directly, without --allow-suspend (Start-RaftCluster always passes it), and one
# cluster started by Start-RaftCluster with a pending-writes cap of 1.
BeforeAll {
    . "$PSScriptRoot/TestHelpers.ps1"

    # The server the module ships (build.ps1 test names it in RAFTPS_SERVER), run by hand.
    function Start-BareServer($Config) {
        $server = $env:RAFTPS_SERVER
        if (-not $server) {
            $serverDir = Join-Path $script:RepoRoot 'out/RaftPS/server'
            $native = Get-ChildItem $serverDir -Recurse -File -ErrorAction SilentlyContinue |
                Where-Object { $_.Name -in 'RaftServer', 'RaftServer.exe' } | Select-Object -First 1
            $server = if ($native) { $native.FullName } else { Join-Path $serverDir 'RaftServer.dll' }
        }
        $file, $arguments = if ($server.EndsWith('.dll')) { (Get-Process -Id $PID).Path, @($server) } else { $server, @() }
        $arguments += @('0', '--config', $Config.ConfigPath, '--data-dir', (Join-Path $Config.DataDirectory 'node-0'), '--quiet')
        Start-Process -FilePath $file -ArgumentList $arguments -PassThru -WorkingDirectory $Config.Directory `
            -RedirectStandardOutput (Join-Path $Config.Directory 'out.log') -RedirectStandardError (Join-Path $Config.Directory 'err.log')
    }

    $script:Bare = New-TestClusterConfig -Nodes 1
    $script:BareProcess = Start-BareServer $Bare
    $script:BareNode = Connect-RaftNode 127.0.0.1 $Bare.Ports[0] -NotDefault
    Wait-Until { (Get-RaftLeader -Connection $BareNode -TimeoutSec 2).Id -eq 0 } -TimeoutSec 30 -Because 'the single node to lead'

    $script:Capped = New-TestClusterConfig -Nodes 3
    $env:RAFTPS_SERVER_ARGS = '--max-pending-writes 1 --quiet --metrics-address 127.0.0.1:0'
    try {
        $script:CappedNodes = @(Start-RaftCluster -ConfigPath $Capped.ConfigPath -DataDirectory $Capped.DataDirectory -TimeoutSec 60)
    } finally {
        Remove-Item Env:RAFTPS_SERVER_ARGS
    }
    $script:CappedNode = Connect-RaftNode 127.0.0.1 $Capped.Ports[0] -NotDefault
}

AfterAll {
    if ($BareProcess) { Stop-Process -Id $BareProcess.Id -Force -ErrorAction SilentlyContinue; $BareProcess.WaitForExit(5000) | Out-Null }
    if ($Bare) { Remove-Item $Bare.Directory -Recurse -Force -ErrorAction SilentlyContinue }
    Remove-TestCluster $Capped
}

Describe 'Suspend on a node started without --allow-suspend' {
    It 'is refused with a PermissionDenied ErrorRecord naming the option, and the node keeps serving' {
        { Suspend-RaftNode 60 -Connection $BareNode -ErrorAction Stop } | Should -Throw -ErrorId 'RaftPermissionDenied,RaftPS.Cmdlets.SuspendRaftNodeCommand'
        Suspend-RaftNode 60 -Connection $BareNode -ErrorVariable denied -ErrorAction SilentlyContinue
        $denied[0].CategoryInfo.Category | Should -Be 'PermissionDenied'
        $denied[0].Exception.Message | Should -Match '--allow-suspend'
        (Get-RaftStatus -Connection $BareNode).Role | Should -Be 'Leader'
        Set-RaftValue after-suspend yes -Connection $BareNode
        (Get-RaftValue after-suspend -Connection $BareNode).Value | Should -Be 'yes'
    }
}

Describe 'A request larger than the node accepts' {
    It 'is a RaftResourceExhausted error at once, not retried, and the node keeps serving' {
        $huge = 'x' * 64MB
        $clock = [Diagnostics.Stopwatch]::StartNew()
        Set-RaftValue huge $huge -Connection $BareNode -TimeoutSec 30 -ErrorVariable refused -ErrorAction SilentlyContinue
        $clock.Elapsed.TotalSeconds | Should -BeLessThan 20 -Because 'a request over the size limit is not retried until the timeout'
        $refused[0].FullyQualifiedErrorId | Should -Be 'RaftResourceExhausted,RaftPS.Cmdlets.SetRaftValueCommand'
        $refused[0].CategoryInfo.Category | Should -Be 'LimitsExceeded'
        $refused[0].Exception.Message | Should -Match '--max-request-bytes'
        Get-RaftValue huge -Connection $BareNode -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Set-RaftValue after-huge ok -Connection $BareNode
        (Get-RaftValue after-huge -Connection $BareNode).Value | Should -Be 'ok'
    }
}

Describe 'Admission control' {
    It 'is waited out by the module: 1000 piped writes against a cap of 1 pending write all land' {
        # 8 SetMany batches in flight against a cap of 1: all but one are refused RESOURCE_EXHAUSTED
        # at a time, and the module sends them again after the pause the node asks for.
        $items = 1..1000 | ForEach-Object { [pscustomobject]@{ Key = "cap/$_"; Value = "$_" } }
        $items | Set-RaftValue -Connection $CappedNode -TimeoutSec 60 -ErrorVariable failed -ErrorAction SilentlyContinue
        $failed | Should -BeNullOrEmpty
        $stored = @(Get-RaftValue 'cap/*' -Connection $CappedNode)
        $stored.Count | Should -Be 1000
        ($stored | Where-Object { $_.Key -ne "cap/$($_.Value)" }) | Should -BeNullOrEmpty

        # The leader did refuse some: its metrics count the calls it answered RESOURCE_EXHAUSTED.
        $leader = Get-RaftLeader -Connection $CappedNode
        $log = ($CappedNodes | Where-Object Id -eq $leader.Id).LogPath
        $metricsUrl = (Select-String -Path $log -Pattern 'Metrics at (\S+)' | Select-Object -Last 1).Matches[0].Groups[1].Value.TrimEnd(',')
        $refusedLines = (Invoke-WebRequest $metricsUrl).Content -split "`n" |
            Where-Object { $_ -match '^raftps_client_requests_total\{' -and $_ -match 'code="ResourceExhausted"' -and $_ -match 'method="SetMany"' }
        $refusedLines | Should -Not -BeNullOrEmpty -Because 'the cap of 1 pending write refused batches that the module then sent again'
        [double](($refusedLines | Select-Object -First 1) -split ' ')[-1] | Should -BeGreaterThan 0
    }
}
