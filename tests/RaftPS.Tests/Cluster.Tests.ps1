# Every cmdlet against one real three-node cluster started with Start-RaftCluster. The tests run
# in order and share the cluster; the ones that stop nodes restart them before they end.
BeforeAll {
    . "$PSScriptRoot/TestHelpers.ps1"
    $script:Config = New-TestClusterConfig -Nodes 3
    $script:Nodes = @(Start-RaftCluster -ConfigPath $Config.ConfigPath -DataDirectory $Config.DataDirectory -TimeoutSec 60)
    $script:Leader = Get-RaftLeader -Connection $Nodes[0] -TimeoutSec 20
    $script:Follower = $Nodes | Where-Object Id -ne $Leader.Id | Select-Object -First 1
    Connect-RaftNode $Follower.Address $Follower.Port | Out-Null

    function script:Restart-Node([int] $Id) {
        Start-RaftCluster -ConfigPath $Config.ConfigPath -DataDirectory $Config.DataDirectory -NodeId $Id -TimeoutSec 30
    }
}

AfterAll {
    Remove-TestCluster $Config
}

Describe 'Start-RaftCluster' {
    It 'outputs one node object per node of the config' {
        $Nodes.Count | Should -Be 3
        $Nodes | ForEach-Object { $_ | Should -BeOfType ([RaftPS.RaftNodeProcess]) }
        $Nodes.Id | Should -Be @(0, 1, 2)
        $Nodes.Port | Should -Be $Config.Ports
        foreach ($node in $Nodes) {
            $node.Address | Should -Be '127.0.0.1'
            $node.DataDirectory | Should -Be (Join-Path $Config.DataDirectory "node-$($node.Id)")
            Test-Path $node.LogPath | Should -BeTrue
        }
    }

    It 'reports the server''s own process as ProcessId, running the server the module ships' {
        # The module folder's server: the native executable for this machine (server/<rid>/), else
        # the dll of a -Portable build.
        $serverDir = Join-Path (Split-Path ([RaftPS.RaftNodeProcess].Assembly.Location)) 'server'
        $native = Join-Path $serverDir "$([System.Runtime.InteropServices.RuntimeInformation]::RuntimeIdentifier)/RaftServer"
        foreach ($node in $Nodes) {
            $process = Get-Process -Id $node.ProcessId
            $process.HasExited | Should -BeFalse
            $arguments = (Get-Content "/proc/$($node.ProcessId)/cmdline" -Raw).TrimEnd("`0") -split "`0"
            if (Test-Path $native) {
                # Executed directly: no dotnet host in front of it.
                $arguments[0] | Should -Be $native
            } else {
                (Split-Path -Leaf $arguments[0]) | Should -Be 'dotnet'
                $arguments[1] | Should -Be (Join-Path $serverDir 'RaftServer.dll')
            }
            $arguments | Should -Contain '--data-dir'
        }
    }

    It 'refuses to start a node this session already runs' {
        $again = Start-RaftCluster -ConfigPath $Config.ConfigPath -DataDirectory $Config.DataDirectory -NodeId 0 -ErrorVariable failures -ErrorAction SilentlyContinue
        $again | Should -BeNullOrEmpty
        $failures[0].FullyQualifiedErrorId | Should -Be 'RaftNodeAlreadyRunning,RaftPS.Cmdlets.StartRaftClusterCommand'
    }

    It 'supports -WhatIf' {
        Start-RaftCluster -ConfigPath $Config.ConfigPath -DataDirectory $Config.DataDirectory -NodeId 5 -WhatIf -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }
}

Describe 'Get-RaftLeader and Get-RaftStatus' {
    It 'Get-RaftLeader outputs Id, Address, Port and Term' {
        $leader = Get-RaftLeader
        $leader | Should -BeOfType ([RaftPS.RaftLeader])
        $leader.Id | Should -BeIn $Nodes.Id
        $leader.Port | Should -Be ($Nodes | Where-Object Id -eq $leader.Id).Port
        $leader.Term | Should -BeGreaterThan 0
    }

    It 'Get-RaftStatus takes the nodes from the pipeline and shows one leader' {
        $statuses = $Nodes | Get-RaftStatus
        $statuses.Count | Should -Be 3
        $statuses | ForEach-Object { $_ | Should -BeOfType ([RaftPS.RaftStatus]) }
        $statuses.Id | Should -Be @(0, 1, 2)
        @($statuses | Where-Object Role -eq 'Leader').Count | Should -Be 1
        $leaderStatus = $statuses | Where-Object Role -eq 'Leader'
        $leaderStatus.Peers.Count | Should -Be 2
        $leaderStatus.Members.Count | Should -Be 3
        $statuses | ForEach-Object { $_.LeaderId | Should -Be $leaderStatus.Id }
        ($statuses | Out-String) | Should -Match 'Role'
    }

    It 'Get-RaftLeader binds -Connection from a node or a leader object' {
        (Get-RaftLeader -Connection $Nodes[2]).Id | Should -Be $Leader.Id
        (Get-RaftLeader | Get-RaftStatus).Role | Should -Be 'Leader'
    }
}

Describe 'Set-RaftValue, Get-RaftValue, Remove-RaftValue' {
    It 'writes through a follower and reads the value back' {
        Set-RaftValue alpha 1 | Should -BeNullOrEmpty
        $value = Get-RaftValue alpha
        $value | Should -BeOfType ([RaftPS.RaftValue])
        $value.Key | Should -Be 'alpha'
        $value.Value | Should -Be '1'
    }

    It '-PassThru outputs the written value' {
        $written = Set-RaftValue beta 'two words' -PassThru
        $written | Should -BeOfType ([RaftPS.RaftValue])
        $written.Key | Should -Be 'beta'
        $written.Value | Should -Be 'two words'
    }

    It 'round-trips Unicode and empty values' {
        Set-RaftValue 'ключ' 'значение ✓'
        (Get-RaftValue 'ключ').Value | Should -Be 'значение ✓'
        Set-RaftValue empty ''
        (Get-RaftValue empty).Value | Should -Be ''
    }

    It 'reads through any node, with an explicit -Connection' {
        Set-RaftValue gamma 3
        foreach ($node in $Nodes) { (Get-RaftValue gamma -Connection $node).Value | Should -Be '3' }
    }

    It 'binds Key and Value by property name (Import-Csv)' {
        $csv = Join-Path $Config.Directory 'kv.csv'
        1..5 | ForEach-Object { [pscustomobject]@{ Key = "csv$_"; Value = "value $_" } } | Export-Csv $csv
        Import-Csv $csv | Set-RaftValue
        (Import-Csv $csv | Get-RaftValue).Value | Should -Be @('value 1', 'value 2', 'value 3', 'value 4', 'value 5')
    }

    It 'takes keys by value from the pipeline' {
        ('alpha', 'gamma' | Get-RaftValue).Value | Should -Be @('1', '3')
    }

    It 'writes RaftKeyNotFound (ObjectNotFound) for a missing key and goes on with the next' {
        $values = Get-RaftValue alpha, missing1, gamma -ErrorVariable failures -ErrorAction SilentlyContinue
        $values.Key | Should -Be @('alpha', 'gamma')
        $failures.Count | Should -Be 1
        $failures[0].FullyQualifiedErrorId | Should -Be 'RaftKeyNotFound,RaftPS.Cmdlets.GetRaftValueCommand'
        $failures[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $failures[0].TargetObject | Should -Be 'missing1'
        { Get-RaftValue missing1 -ErrorAction Stop } | Should -Throw -ErrorId 'RaftKeyNotFound,RaftPS.Cmdlets.GetRaftValueCommand'
    }

    It 'lists keys matching a wildcard, with no error when none match' {
        (Get-RaftValue 'csv*').Key | Should -Be @('csv1', 'csv2', 'csv3', 'csv4', 'csv5')
        (Get-RaftValue 'csv[24]').Key | Should -Be @('csv2', 'csv4')
        (Get-RaftValue '?lpha').Key | Should -Be 'alpha'
        Get-RaftValue 'nothing*' -ErrorVariable failures | Should -BeNullOrEmpty
        $failures.Count | Should -Be 0
    }

    It 'pages through more keys than one Range page' {
        1..1100 | ForEach-Object { [pscustomobject]@{ Key = 'page{0:d4}' -f $_; Value = "$_" } } | Set-RaftValue
        $listed = Get-RaftValue 'page*'
        $listed.Count | Should -Be 1100
        $listed[0].Key | Should -Be 'page0001'
        $listed[-1].Key | Should -Be 'page1100'
    }

    It 'keeps outputs and errors of a pipeline in input order' {
        $long = 'x' * 2000
        $rows = 1..60 | ForEach-Object { [pscustomobject]@{ Key = $(if ($_ % 20 -eq 0) { "$long$_" } else { "order$_" }); Value = "$_" } }
        $stream = $rows | Set-RaftValue -PassThru -ErrorAction Continue 2>&1
        $stream.Count | Should -Be 60
        for ($i = 0; $i -lt 60; $i++) {
            if (($i + 1) % 20 -eq 0) {
                $stream[$i] | Should -BeOfType ([System.Management.Automation.ErrorRecord])
                $stream[$i].FullyQualifiedErrorId | Should -Be 'RaftInvalidArgument,RaftPS.Cmdlets.SetRaftValueCommand'
                $stream[$i].CategoryInfo.Category | Should -Be 'InvalidArgument'
            } else {
                $stream[$i].Key | Should -Be "order$($i + 1)"
            }
        }
    }

    It 'batches a pipeline into SetMany calls, with outputs, a per-item error and the count in input order' {
        $long = 'k' * 1100
        $rows = 1..300 | ForEach-Object { [pscustomobject]@{ Key = $(if ($_ -eq 64) { "$long$_" } else { 'batchpipe{0:d3}' -f $_ }); Value = "b$_" } }
        $stream = @($rows | Set-RaftValue -PassThru -ErrorAction Continue 2>&1)
        $stream.Count | Should -Be 300
        for ($i = 0; $i -lt 300; $i++) {
            if ($i -eq 63) {
                $stream[$i] | Should -BeOfType ([System.Management.Automation.ErrorRecord])
                $stream[$i].FullyQualifiedErrorId | Should -Be 'RaftInvalidArgument,RaftPS.Cmdlets.SetRaftValueCommand'
                $stream[$i].CategoryInfo.Category | Should -Be 'InvalidArgument'
                $stream[$i].TargetObject | Should -Be "$long$($i + 1)"
                $stream[$i].Exception.Message | Should -BeLike "Set-RaftValue '$long$($i + 1)': *1 KiB*"
            } else {
                $stream[$i] | Should -BeOfType ([RaftPS.RaftValue])
                $stream[$i].Key | Should -Be ('batchpipe{0:d3}' -f ($i + 1))
                $stream[$i].Value | Should -Be "b$($i + 1)"
            }
        }
        $written = @(Get-RaftValue 'batchpipe*')
        $written.Count | Should -Be 299
        ($written | Where-Object Key -eq 'batchpipe300').Value | Should -Be 'b300'
        # 128 + 128 + 44 items: the leader logged the batches, one line per call.
        $logs = ($Nodes | ForEach-Object { Get-Content $_.LogPath -Raw }) -join "`n"
        $logs | Should -Match 'Command from client: setval 128 keys'
        $logs | Should -Match 'Command from client: setval 44 keys'
    }

    It 'never hands its calls to the pipeline thread''s SynchronizationContext' {
        # A host may give the pipeline thread a SynchronizationContext (GUI hosts do). The cmdlets
        # block that thread while their calls are in flight, so a call posted back to it would never
        # run. This context counts what it is given and runs it on the thread pool, so that such a
        # regression fails here rather than hangs.
        if (-not ('RaftPSTests.CountingContext' -as [type])) {
            Add-Type -TypeDefinition @'
namespace RaftPSTests {
    public sealed class CountingContext : System.Threading.SynchronizationContext {
        public int Given;
        public override void Post(System.Threading.SendOrPostCallback d, object state) {
            System.Threading.Interlocked.Increment(ref Given);
            System.Threading.ThreadPool.QueueUserWorkItem(_ => d(state));
        }
        public override void Send(System.Threading.SendOrPostCallback d, object state) {
            System.Threading.Interlocked.Increment(ref Given);
            d(state);
        }
    }
}
'@
        }
        $rows = 1..300 | ForEach-Object { [pscustomobject]@{ Key = "context$_"; Value = "v$_" } }
        $context = [RaftPSTests.CountingContext]::new()
        $previous = [System.Threading.SynchronizationContext]::Current
        [System.Threading.SynchronizationContext]::SetSynchronizationContext($context)
        try {
            $written = $rows | Set-RaftValue -PassThru
            $read = $rows | Get-RaftValue
            $rows | Select-Object -First 10 | Remove-RaftValue
        } finally {
            [System.Threading.SynchronizationContext]::SetSynchronizationContext($previous)
        }
        $context.Given | Should -Be 0
        $written.Key | Should -Be $rows.Key
        $read.Value | Should -Be $rows.Value
        Get-RaftValue 'context1' -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        (Get-RaftValue 'context11').Value | Should -Be 'v11'
    }

    It '-WhatIf writes nothing' {
        Set-RaftValue whatif 1 -WhatIf
        Get-RaftValue whatif -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Remove-RaftValue alpha -WhatIf
        (Get-RaftValue alpha).Value | Should -Be '1'
    }

    It 'Remove-RaftValue removes keys from the pipeline, RaftKeyNotFound for a missing one' {
        Get-RaftValue 'csv*' | Remove-RaftValue
        Get-RaftValue 'csv*' | Should -BeNullOrEmpty
        Remove-RaftValue csv1 -ErrorVariable failures -ErrorAction SilentlyContinue
        $failures[0].FullyQualifiedErrorId | Should -Be 'RaftKeyNotFound,RaftPS.Cmdlets.RemoveRaftValueCommand'
        $failures[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }

    It 'completes -Key with the keys this session used' {
        $line = 'Get-RaftValue gam'
        (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Should -Contain 'gamma'
    }
}

Describe 'Failures' {
    It 'fails over from a stopped node to the other members, and the node restarts with its data' {
        $victim = $Nodes | Where-Object Id -ne $Leader.Id | Select-Object -Last 1
        Stop-RaftCluster -ConfigPath $Config.ConfigPath -NodeId $victim.Id
        Get-Process -Id $victim.ProcessId -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $through = Connect-RaftNode $victim.Address $victim.Port -NotDefault
        Set-RaftValue down 'while node was down' -Connection $through -TimeoutSec 10
        (Get-RaftValue down -Connection $through).Value | Should -Be 'while node was down'
        { Get-RaftStatus -Connection $through -TimeoutSec 1 -ErrorAction Stop } |
            Should -Throw -ErrorId 'RaftNodeUnreachable,RaftPS.Cmdlets.GetRaftStatusCommand'

        $restarted = Restart-Node $victim.Id
        $restarted.Id | Should -Be $victim.Id
        $restarted.ProcessId | Should -Not -Be $victim.ProcessId
        Wait-Until { (Get-RaftStatus -Connection $through -TimeoutSec 2).AppliedIndex -ge (Get-RaftStatus -Connection $Leader).CommitIndex } -Because 'the restarted node to catch up'
        (Get-RaftValue alpha, down -Connection $through).Value | Should -Be @('1', 'while node was down')
    }

    It 'times out with RaftTimeout (OperationTimeout) when a majority is down' {
        $others = @($Nodes | Where-Object Id -ne $Follower.Id)
        Stop-RaftCluster -ConfigPath $Config.ConfigPath -NodeId $others.Id
        try {
            $clock = [Diagnostics.Stopwatch]::StartNew()
            $err = { Set-RaftValue lost 1 -TimeoutSec 2 -ErrorAction Stop } | Should -Throw -ErrorId 'RaftTimeout,RaftPS.Cmdlets.SetRaftValueCommand' -PassThru
            $clock.Elapsed.TotalSeconds | Should -BeLessThan 6
            $err.CategoryInfo.Category | Should -Be 'OperationTimeout'
            $err.TargetObject | Should -Be 'lost'
        } finally {
            Start-RaftCluster -ConfigPath $Config.ConfigPath -DataDirectory $Config.DataDirectory -NodeId $others.Id -TimeoutSec 30 | Out-Null
        }
        Wait-Until { Get-RaftLeader -TimeoutSec 2 } -Because 'a new leader'
        (Get-RaftValue alpha).Value | Should -Be '1'
    }

    It 'loses no acknowledged write when the leader is killed during a pipeline of writes' {
        $leader = Get-RaftLeader
        $leaderNode = $Nodes | Where-Object Id -eq $leader.Id
        $connection = Connect-RaftNode $leader.Address $leader.Port -NotDefault
        $acknowledged = 1..400 | ForEach-Object {
            if ($_ -eq 150) { Stop-RaftCluster -ConfigPath $Config.ConfigPath -NodeId $leader.Id }
            [pscustomobject]@{ Key = "failover$_"; Value = "v$_" }
        } | Set-RaftValue -Connection $connection -PassThru -TimeoutSec 15 -ErrorVariable failures -ErrorAction SilentlyContinue
        $failures | ForEach-Object { $_.FullyQualifiedErrorId | Should -BeLike 'RaftTimeout*' }
        $acknowledged.Count | Should -BeGreaterThan 300
        $newLeader = Get-RaftLeader -Connection $Follower
        $newLeader.Id | Should -Not -Be $leader.Id
        $newLeader.Term | Should -BeGreaterThan $leader.Term
        $read = @{}
        Get-RaftValue 'failover*' -Connection $Follower | ForEach-Object { $read[$_.Key] = $_.Value }
        foreach ($value in $acknowledged) { $read[$value.Key] | Should -Be $value.Value -Because "$($value.Key) was acknowledged" }
        Restart-Node $leader.Id | Out-Null
    }
}
