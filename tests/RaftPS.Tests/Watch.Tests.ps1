# Get-RaftStatus -All and Watch-RaftCluster (not interactive here: its frames are plain tables on
# the information stream), against one real cluster.
BeforeAll {
    . "$PSScriptRoot/TestHelpers.ps1"
    $script:Config = New-TestClusterConfig -Nodes 3
    $script:Nodes = @(Start-RaftCluster -ConfigPath $Config.ConfigPath -DataDirectory $Config.DataDirectory -TimeoutSec 60)
    Connect-RaftNode $Nodes[0].Address $Nodes[0].Port | Out-Null
    1..20 | ForEach-Object { Set-RaftValue "watch/$_" "$_" }
}

AfterAll {
    Remove-TestCluster $Config
}

Describe 'Get-RaftStatus -All' {
    It 'gives one row per member with one leader, all in the same term and caught up' {
        Wait-Until { @(Get-RaftStatus -All | Where-Object Lag -ne 0).Count -eq 0 } -Because 'every member applied everything'
        $rows = @(Get-RaftStatus -All)
        $rows | ForEach-Object { $_ | Should -BeOfType ([RaftPS.RaftNodeStatus]) }
        $rows.Id | Should -Be @(0, 1, 2)
        $rows.Port | Should -Be $Config.Ports
        $rows.Health | Should -Be @('Ok', 'Ok', 'Ok')
        @($rows | Where-Object IsLeader).Count | Should -Be 1
        @($rows.Term | Select-Object -Unique).Count | Should -Be 1
        $rows | ForEach-Object { $_.AppliedIndex | Should -BeGreaterOrEqual 20; $_.WritesTotal | Should -Not -BeNullOrEmpty }
        ($rows | Where-Object IsLeader).SinceLeaderContact | Should -BeNullOrEmpty
        $rows | Where-Object { -not $_.IsLeader } | ForEach-Object { $_.SinceLeaderContact.TotalSeconds | Should -BeLessThan 1 }
        ($rows | Where-Object IsLeader).FsyncP99 | Should -BeGreaterThan ([TimeSpan]::Zero)
    }

    It 'has a table view like etcdctl endpoint status' {
        $text = Get-RaftStatus -All | Out-String -Width 200
        $text | Should -Match 'Endpoint\s+Id\s+IsLeader\s+Role\s+Term\s+Commit\s+Applied\s+Lag\s+LogSize\s+Health'
        $text | Should -Match "127\.0\.0\.1:$($Config.Ports[0])\s+0\s+(True|False)\s+(Leader|Follower)"
    }

    It 'shows a suspended member as Suspended without waiting out -TimeoutSec, also when it is the connected node' {
        # The connected node itself: the rows still come from the members it listed before.
        $follower = $Nodes[0]
        Suspend-RaftNode 2
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $rows = @(Get-RaftStatus -All)
        $clock.Elapsed.TotalSeconds | Should -BeLessThan 3
        $rows.Count | Should -Be 3
        $row = $rows | Where-Object Port -eq $follower.Port
        $row.Health | Should -Be 'Suspended'
        $row.Id | Should -Be $follower.Id
        @($rows | Where-Object Health -eq 'Ok').Count | Should -Be 2
        Wait-Until { (Get-RaftStatus -All | Where-Object Port -eq $follower.Port).Health -eq 'Ok' } -Because 'the member resumed'
    }
}

Describe 'Watch-RaftCluster' {
    It 'writes -Count plain frames with every member, rates from the second frame on' {
        Wait-Until { @(Get-RaftStatus -All | Where-Object Health -ne 'Ok').Count -eq 0 } -Because 'every member answering'
        $frames = @(Watch-RaftCluster -Count 2 -RefreshSec 0.3 6>&1 | ForEach-Object { "$_" })
        $frames.Count | Should -Be 2
        $frames[0] | Should -Match 'ID\s+ENDPOINT\s+ROLE\s+TERM\s+COMMIT\s+APPLIED\s+LAG\s+HEARTBEAT\s+WRITES/S\s+READS/S\s+FSYNC P99\s+STATUS'
        $frames[0] | Should -Not -Match "`e\[" # no escape sequences when not interactive
        foreach ($port in $Config.Ports) { $frames[1] | Should -Match "127\.0\.0\.1:$port\s+(leader|follower)\s" }
        @([regex]::Matches($frames[1], '\bleader\b')).Count | Should -Be 1
        # writes/s and reads/s are numbers once there is a previous frame
        $frames[1] | Should -Match "127\.0\.0\.1:$($Config.Ports[0]).*\s\d+\.\d\s+\d+\.\d\s"
    }

    It 'ends on Ctrl+C (the pipeline stopping) from another thread' {
        $ps = [powershell]::Create()
        $null = $ps.AddScript("Import-Module '$($RepoRoot)/RaftPS.psd1'; Watch-RaftCluster -Connection (Connect-RaftNode 127.0.0.1 $($Config.Ports[0]) -NotDefault) 6>`$null")
        $async = $ps.BeginInvoke()
        try {
            Start-Sleep -Milliseconds 1500
            $async.IsCompleted | Should -BeFalse
            $ps.Stop()
            $async.AsyncWaitHandle.WaitOne(5000) | Should -BeTrue
        }
        finally { $ps.Dispose() }
    }
}
