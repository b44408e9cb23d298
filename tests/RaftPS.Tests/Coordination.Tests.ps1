# Revisions, conditional writes, watches, leases and locks through the cmdlets, against a real
# three-node cluster (Start-RaftCluster). The nodes keep a small window of history (2048 changes)
# so that a watch from too far back is compacted.
BeforeAll {
    . "$PSScriptRoot/TestHelpers.ps1"
    $script:Config = New-TestClusterConfig -Nodes 3
    $script:ServerArgs = '--watch-window 2048 --quiet'
    function script:Start-Nodes([int[]] $Id) {
        $saved = $env:RAFTPS_SERVER_ARGS
        $env:RAFTPS_SERVER_ARGS = $ServerArgs
        try {
            if ($null -ne $Id) { Start-RaftCluster -ConfigPath $Config.ConfigPath -DataDirectory $Config.DataDirectory -NodeId $Id -TimeoutSec 60 }
            else { Start-RaftCluster -ConfigPath $Config.ConfigPath -DataDirectory $Config.DataDirectory -TimeoutSec 60 }
        } finally { $env:RAFTPS_SERVER_ARGS = $saved }
    }
    $script:Nodes = @(Start-Nodes)
    $script:Leader = Get-RaftLeader -Connection $Nodes[0] -TimeoutSec 20
    $script:Follower = $Nodes | Where-Object Id -ne $Leader.Id | Select-Object -First 1
    Connect-RaftNode $Follower.Address $Follower.Port | Out-Null
    # Processes the tests start (lock contenders): killed in AfterAll whatever happened.
    $script:Started = [System.Collections.Generic.List[System.Diagnostics.Process]]::new()

    function script:Start-PowerShell([string] $Script, [string[]] $Arguments) {
        $info = [System.Diagnostics.ProcessStartInfo]::new([Environment]::ProcessPath)
        $info.ArgumentList.Add([Environment]::GetCommandLineArgs()[0])
        foreach ($a in @('-NoProfile', '-NonInteractive', '-File', $Script) + $Arguments) { $info.ArgumentList.Add($a) }
        $info.RedirectStandardOutput = $true
        $info.RedirectStandardError = $true
        $info.UseShellExecute = $false
        $process = [System.Diagnostics.Process]::Start($info)
        $script:Started.Add($process)
        $process
    }
}

AfterAll {
    foreach ($process in $Started) { if (-not $process.HasExited) { $process.Kill($true) } }
    Remove-TestCluster $Config
}

Describe 'Revisions' {
    It 'Get-RaftValue outputs the revision of the write that set the value' {
        $written = Set-RaftValue rev/a one -PassThru
        $read = Get-RaftValue rev/a
        $read.Revision | Should -Be $written.Revision
        $read.CreateRevision | Should -Be $written.Revision
        $read.Version | Should -Be 1
        $again = Set-RaftValue rev/a two -PassThru
        $again.Revision | Should -BeGreaterThan $written.Revision
        $read = Get-RaftValue rev/a
        ($read.Revision, $read.CreateRevision, $read.Version) | Should -Be @($again.Revision, $written.Revision, 2)
        (Get-RaftValue 'rev/*').Revision | Should -Be @($again.Revision)
    }

    It 'shows values as a table of Key, Value and Revision' {
        $text = Get-RaftValue rev/a | Out-String
        $text | Should -Match 'Key\s+Value\s+Revision'
        $text | Should -Match "rev/a\s+two\s+$((Get-RaftValue rev/a).Revision)"
    }
}

Describe 'Compare-and-set' {
    It 'writes with -IfRevision only while the revision is the one read, else RaftConflict naming the current revision' {
        $v = Set-RaftValue cas/k 1 -PassThru
        $won = Set-RaftValue cas/k 2 -IfRevision $v.Revision -PassThru
        $won.Revision | Should -BeGreaterThan $v.Revision
        $err = { Set-RaftValue cas/k 3 -IfRevision $v.Revision -ErrorAction Stop } |
            Should -Throw -ErrorId 'RaftConflict,RaftPS.Cmdlets.SetRaftValueCommand' -PassThru
        $err.CategoryInfo.Category | Should -Be 'InvalidOperation'
        $err.TargetObject | Should -Be 'cas/k'
        $err.Exception.CurrentRevision | Should -Be $won.Revision
        $err.Exception.Message | Should -Match "revision is $($won.Revision), not $($v.Revision)"
        (Get-RaftValue cas/k).Value | Should -Be '2'
    }

    It 'creates with -IfAbsent once; the second is RaftConflict (ResourceExists)' {
        Set-RaftValue cas/new first -IfAbsent
        $err = { Set-RaftValue cas/new second -IfAbsent -ErrorAction Stop } | Should -Throw -ErrorId 'RaftConflict,RaftPS.Cmdlets.SetRaftValueCommand' -PassThru
        $err.CategoryInfo.Category | Should -Be 'ResourceExists'
        (Get-RaftValue cas/new).Value | Should -Be 'first'
    }

    It 'writes with -IfValue only over that value' {
        Set-RaftValue cas/v a
        Set-RaftValue cas/v b -IfValue a
        { Set-RaftValue cas/v c -IfValue a -ErrorAction Stop } | Should -Throw -ErrorId 'RaftConflict,RaftPS.Cmdlets.SetRaftValueCommand'
        (Get-RaftValue cas/v).Value | Should -Be 'b'
    }

    It 'removes with -IfRevision only the revision read' {
        $v = Set-RaftValue cas/del x -PassThru
        Set-RaftValue cas/del y
        $err = { Remove-RaftValue cas/del -IfRevision $v.Revision -ErrorAction Stop } | Should -Throw -ErrorId 'RaftConflict,RaftPS.Cmdlets.RemoveRaftValueCommand' -PassThru
        $err.CategoryInfo.Category | Should -Be 'InvalidOperation'
        Remove-RaftValue cas/del -IfRevision (Get-RaftValue cas/del).Revision
        Get-RaftValue cas/del -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It 'lets exactly one of two racing -IfRevision writers win each round' {
        $rounds = 20
        $writer = {
            param($RepoRoot, $Port, $Id, $Rounds)
            Import-Module (Join-Path $RepoRoot 'RaftPS.psd1')
            Connect-RaftNode 127.0.0.1 $Port | Out-Null
            for ($round = 1; $round -le $Rounds; $round++) {
                # The coordinator publishes the round and the revision both writers must compare.
                $flag = Wait-RaftValue race/round -Value $round -TimeoutSec 30 -ErrorAction Stop
                $revision = [long] (Get-RaftValue race/revision).Value
                Set-RaftValue race/k "writer $Id round $round" -IfRevision $revision -ErrorVariable conflict -ErrorAction SilentlyContinue
                [pscustomobject]@{
                    Writer = $Id; Round = $round
                    Won = -not $conflict
                    Error = if ($conflict) { $conflict[0].FullyQualifiedErrorId } else { $null }
                    Current = if ($conflict) { $conflict[0].Exception.CurrentRevision } else { 0 }
                }
                Set-RaftValue "race/done/$Id" $round
            }
        }
        Set-RaftValue race/k start
        $jobs = 1, 2 | ForEach-Object {
            $port = $Nodes[$_].Port
            Start-ThreadJob -ScriptBlock $writer -ArgumentList $RepoRoot, $port, $_, $rounds
        }
        try {
            $revisions = @{}
            for ($round = 1; $round -le $rounds; $round++) {
                $revisions[$round] = (Get-RaftValue race/k).Revision
                Set-RaftValue race/revision $revisions[$round]
                Set-RaftValue race/round $round
                foreach ($id in 1, 2) { Wait-RaftValue "race/done/$id" -Value $round -TimeoutSec 60 -ErrorAction Stop | Out-Null }
            }
            $results = $jobs | Wait-Job -Timeout 120 | Receive-Job -ErrorAction Stop
        } finally { $jobs | Remove-Job -Force }

        $results.Count | Should -Be (2 * $rounds)
        foreach ($round in 1..$rounds) {
            $inRound = @($results | Where-Object Round -eq $round)
            @($inRound | Where-Object Won).Count | Should -Be 1 -Because "exactly one writer wins round $round"
            $loser = $inRound | Where-Object { -not $_.Won }
            $loser.Error | Should -Be 'RaftConflict,RaftPS.Cmdlets.SetRaftValueCommand'
            $loser.Current | Should -BeGreaterThan $revisions[$round]
        }
        $last = $results | Where-Object { $_.Round -eq $rounds -and $_.Won }
        (Get-RaftValue race/k).Value | Should -Be "writer $($last.Writer) round $rounds"
    }
}

Describe 'Watch-RaftValue and Wait-RaftValue' {
    It 'streams puts and deletes of a prefix in revision order, with -Count' {
        $from = (Get-RaftValue 'watch/*' -ErrorAction SilentlyContinue | Measure-Object).Count
        $start = (Set-RaftValue watch/marker m -PassThru).Revision + 1
        Set-RaftValue watch/a 1
        Set-RaftValue other/b 2
        Set-RaftValue watch/c 3
        Remove-RaftValue watch/a
        $changes = @(Watch-RaftValue 'watch/*' -FromRevision $start -Count 3 -TimeoutSec 20)
        $changes.Count | Should -Be 3
        $changes | ForEach-Object { $_ | Should -BeOfType ([RaftPS.RaftChange]) }
        $changes.Key | Should -Be @('watch/a', 'watch/c', 'watch/a')
        $changes.Kind | Should -Be @('Put', 'Put', 'Delete')
        $changes.Value | Should -Be @('1', '3', '')
        $changes[0].Revision | Should -BeLessThan $changes[1].Revision
        $changes[1].Revision | Should -BeLessThan $changes[2].Revision
        $from | Should -BeGreaterOrEqual 0
        (Watch-RaftValue watch/c -FromRevision $start -Count 1 -TimeoutSec 20 | Out-String) | Should -Match 'Revision\s+Kind\s+Key\s+Value'
    }

    It 'starts after the current revision without -FromRevision and stops at -TimeoutSec' {
        Set-RaftValue quiet/x 1
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $changes = @(Watch-RaftValue quiet/x -TimeoutSec 2)
        $clock.Elapsed.TotalSeconds | Should -BeGreaterOrEqual 1.8
        $changes.Count | Should -Be 0
    }

    It 'says RaftWatchCompacted for revisions no node keeps' {
        1..2100 | ForEach-Object { [pscustomobject]@{ Key = "fill/$_"; Value = "$_" } } | Set-RaftValue
        $err = { Watch-RaftValue 'fill/*' -FromRevision 2 -Count 1 -TimeoutSec 20 -ErrorAction Stop } |
            Should -Throw -ErrorId 'RaftWatchCompacted,RaftPS.Cmdlets.WatchRaftValueCommand' -PassThru
        $err.Exception.CompactRevision | Should -BeGreaterThan 2
        $err.Exception.Message | Should -Match 'read the current values again'
    }

    It 'Wait-RaftValue returns when the key gets the value, and at once when it already has it' {
        $job = Start-ThreadJob -ScriptBlock {
            param($RepoRoot, $Port)
            Import-Module (Join-Path $RepoRoot 'RaftPS.psd1')
            Connect-RaftNode 127.0.0.1 $Port | Out-Null
            Start-Sleep -Milliseconds 500
            Set-RaftValue wait/flag busy
            Set-RaftValue wait/flag ready
        } -ArgumentList $RepoRoot, $Leader.Port
        try {
            $got = Wait-RaftValue wait/flag -Value ready -TimeoutSec 30
            $got.Value | Should -Be 'ready'
            $got.Revision | Should -Be (Get-RaftValue wait/flag).Revision
            (Wait-RaftValue wait/flag -TimeoutSec 5).Value | Should -Be 'ready'
        } finally { $job | Wait-Job -Timeout 30 | Remove-Job -Force }
    }

    It 'Wait-RaftValue -Absent sees a key with -TtlSec expire' {
        Set-RaftValue ttl/k v -TtlSec 2
        (Get-RaftValue ttl/k).Lease | Should -BeGreaterThan 0
        $clock = [Diagnostics.Stopwatch]::StartNew()
        Wait-RaftValue ttl/k -Absent -TimeoutSec 30 | Should -BeNullOrEmpty
        $clock.Elapsed.TotalSeconds | Should -BeGreaterThan 1
        Get-RaftValue ttl/k -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It 'Wait-RaftValue gives up after -TimeoutSec with RaftTimeout' {
        $err = { Wait-RaftValue never/there -TimeoutSec 1 -ErrorAction Stop } | Should -Throw -ErrorId 'RaftTimeout,RaftPS.Cmdlets.WaitRaftValueCommand' -PassThru
        $err.CategoryInfo.Category | Should -Be 'OperationTimeout'
        $err.TargetObject | Should -Be 'never/there'
    }

    It 'sees every change of 10,000 writes in order while the leader is killed and restarted' {
        $leader = Get-RaftLeader
        $leaderNode = $Nodes | Where-Object Id -eq $leader.Id
        $watchedAt = Connect-RaftNode $leader.Address $leader.Port -NotDefault
        $from = (Set-RaftValue w10k/start 0 -PassThru).Revision + 1
        $imported = [hashtable]::Synchronized(@{})
        $watcher = Start-ThreadJob -ScriptBlock {
            param($RepoRoot, $Connection, $From, $Imported)
            Import-Module (Join-Path $RepoRoot 'RaftPS.psd1')
            $Imported.Done = $true
            Watch-RaftValue 'w10k/item*' -FromRevision $From -Count 10000 -TimeoutSec 240 -Connection $Connection
        } -ArgumentList $RepoRoot, $watchedAt, $from, $imported
        # The window (--watch-window 2048) is shorter than the writes: they start once the watcher's
        # module is loaded (a loaded machine takes seconds), or it would begin behind the window.
        Wait-Until { $imported.Done } -TimeoutSec 60 -Because 'the watcher to load the module'
        try {
            $written = 1..10000 | ForEach-Object {
                if ($_ -eq 3000) { Stop-Process -Id $leaderNode.ProcessId -Force }   # kill -9
                if ($_ -eq 6000) {
                    # The session still lists the killed process: let Stop-RaftCluster forget it, then restart the node.
                    Stop-RaftCluster -ConfigPath $Config.ConfigPath -NodeId $leader.Id
                    Start-Nodes $leader.Id | Out-Null
                }
                [pscustomobject]@{ Key = "w10k/item$_"; Value = "$_" }
            } | Set-RaftValue -Connection $Follower -TimeoutSec 60 -PassThru
            $written.Count | Should -Be 10000
            $changes = @($watcher | Wait-Job -Timeout 240 | Receive-Job -ErrorAction Stop)
        } finally { $watcher | Remove-Job -Force }

        $changes.Count | Should -Be 10000
        for ($i = 1; $i -lt $changes.Count; $i++) {
            if ($changes[$i].Revision -le $changes[$i - 1].Revision) { throw "change $i (revision $($changes[$i].Revision)) does not follow revision $($changes[$i - 1].Revision)" }
        }
        ($changes.Kind | Sort-Object -Unique) | Should -Be 'Put'
        $byKey = @{}
        foreach ($change in $changes) { $byKey[$change.Key] = $change.Revision }
        $byKey.Count | Should -Be 10000
        $differ = @($written | Where-Object { $byKey[$_.Key] -ne $_.Revision })
        $differ | Should -BeNullOrEmpty -Because 'each change carries the revision its write was committed at'
        ($written.Key | Sort-Object) | Should -Be ($byKey.Keys | Sort-Object)
        (Get-RaftStatus -Connection $Nodes[[int] $leader.Id] -TimeoutSec 10).AppliedIndex | Should -BeGreaterThan 0
    }
}

Describe 'Lock-RaftKey' {
    It 'outputs a held lock whose revision grows with each holder, and waits in line' {
        $first = Lock-RaftKey locks/basic -TtlSec 5
        $first | Should -BeOfType ([RaftPS.RaftLock])
        $first.IsHeld | Should -BeTrue
        $first.Key | Should -Match '^locks/basic/[0-9a-f]{16}$'
        (Get-RaftValue $first.Key).Value | Should -Be $first.Owner
        (Get-RaftValue $first.Key).Lease | Should -Be $first.LeaseId
        ($first | Out-String) | Should -Match 'Name\s+Revision\s+IsHeld'

        $err = { Lock-RaftKey locks/basic -TimeoutSec 1 -ErrorAction Stop } | Should -Throw -ErrorId 'RaftTimeout,RaftPS.Cmdlets.LockRaftKeyCommand' -PassThru
        $err.CategoryInfo.Category | Should -Be 'OperationTimeout'
        @(Get-RaftValue 'locks/basic/*').Count | Should -Be 1 -Because 'a waiter that gave up leaves nothing behind'

        $first | Unlock-RaftKey
        $first.IsHeld | Should -BeFalse
        Get-RaftValue $first.Key -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $second = Lock-RaftKey locks/basic -TimeoutSec 10
        $second.Revision | Should -BeGreaterThan $first.Revision
        $second | Unlock-RaftKey
        $second | Unlock-RaftKey # twice: nothing
    }

    It 'keeps a lock alive for longer than its ttl' {
        $held = Lock-RaftKey locks/alive -TtlSec 2
        try {
            Start-Sleep -Seconds 5
            $held.IsHeld | Should -BeTrue
            (Get-RaftValue $held.Key).Value | Should -Be $held.Owner
        } finally { $held | Unlock-RaftKey }
    }

    It 'completes lock names this session used' {
        $line = 'Lock-RaftKey locks/b'
        (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Should -Contain 'locks/basic'
        $line = 'Watch-RaftValue cas/'
        (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Should -Contain 'cas/k'
    }

    It 'never lets two processes hold it at once, also when a holder is killed' {
        $directory = Join-Path $Config.Directory 'locks'
        New-Item -ItemType Directory -Path $directory | Out-Null
        $worker = Join-Path $PSScriptRoot 'Workers/LockWorker.ps1'
        $log = Join-Path $directory 'sections.log'
        $ready = Join-Path $directory 'hung.ready'
        Remove-RaftValue counter -ErrorAction SilentlyContinue
        $port = [string] $Follower.Port

        # A holder that will be killed while it holds the lock (and has read the counter).
        $hung = Start-PowerShell $worker @('-RepoRoot', $RepoRoot, '-Port', $port, '-Name', 'locks/shared', '-LogPath', $log, '-Hang', '-ReadyPath', $ready, '-TtlSec', '3')
        Wait-Until { Test-Path $ready } -TimeoutSec 60 -Because 'the first holder to take the lock'
        # The contenders' leases outlive a loaded machine's pauses (they unlock, so their ttl does
        # not slow the test); only the killed holder's short ttl is waited out.
        $contenders = 1..3 | ForEach-Object {
            Start-PowerShell $worker @('-RepoRoot', $RepoRoot, '-Port', [string] $Nodes[$_ - 1].Port, '-Name', 'locks/shared', '-LogPath', (Join-Path $directory "w$_.log"), '-Rounds', '5', '-TtlSec', '10')
        }
        Wait-Until { @(Get-RaftValue 'locks/shared/*').Count -eq 4 } -TimeoutSec 60 -Because 'three contenders waiting behind the holder'
        $hung.Kill($true)
        $killedAt = [DateTime]::UtcNow.Ticks

        foreach ($process in $contenders) {
            if (-not $process.WaitForExit(120000)) { throw "a contender did not finish: $($process.StandardError.ReadToEnd())" }
            $process.ExitCode | Should -Be 0 -Because $process.StandardError.ReadToEnd()
        }
        (Get-RaftValue counter).Value | Should -Be '15' -Because 'every increment survives only if no two holders overlapped'

        $sections = Get-ChildItem $directory -Filter 'w*.log' | Get-Content | ForEach-Object {
            $word, $token, $start, $end = $_ -split ' '
            [pscustomobject]@{ Token = [long] $token; Start = [long] $start; End = [long] $end }
        } | Sort-Object Token
        $sections.Count | Should -Be 15
        $hungToken = [long] (Get-Content $ready)
        $sections[0].Token | Should -BeGreaterThan $hungToken
        $sections[0].Start | Should -BeGreaterThan $killedAt -Because 'the next holder waits for the killed one''s lease to expire'
        for ($i = 1; $i -lt $sections.Count; $i++) {
            $sections[$i].Start | Should -BeGreaterThan $sections[$i - 1].End -Because 'holders in token order never overlap'
        }
        @(Get-RaftValue 'locks/shared/*' -ErrorAction SilentlyContinue).Count | Should -Be 0
    }
}
