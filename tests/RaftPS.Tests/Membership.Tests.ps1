# Membership through the cmdlets, against one real cluster that grows and shrinks: the tests run
# in order and share it.
BeforeAll {
    . "$PSScriptRoot/TestHelpers.ps1"
    $script:Config = New-TestClusterConfig -Nodes 3
    $script:Nodes = @(Start-RaftCluster -ConfigPath $Config.ConfigPath -DataDirectory $Config.DataDirectory -TimeoutSec 60)
    Connect-RaftNode $Nodes[0].Address $Nodes[0].Port | Out-Null
    $script:Spare = @(); while ($Spare.Count -lt 3) { $p = Get-FreePort; if ($p -notin $Config.Ports -and $p -notin $Spare) { $script:Spare += $p } }
    function script:Add-Local([int] $Id, [int] $Port, [switch] $AsLearner) {
        Add-RaftNode -Id $Id -Port $Port -Start -AsLearner:$AsLearner -ConfigPath $Config.ConfigPath -DataDirectory $Config.DataDirectory -CatchUpTimeoutSec 60 -TimeoutSec 20
    }
}

AfterAll {
    Remove-TestCluster $Config
}

Describe 'Get-RaftMember' {
    It 'lists the three voters of the config, one of them the leader, none behind' {
        $members = @(Get-RaftMember)
        $members.Id | Should -Be @(0, 1, 2)
        $members | ForEach-Object { $_ | Should -BeOfType ([RaftPS.RaftMember]); $_.Role | Should -Be 'Voter' }
        @($members | Where-Object IsLeader).Count | Should -Be 1
        Wait-Until { @(Get-RaftMember | Where-Object { $_.Behind -ne 0 -or -not $_.Reachable }).Count -eq 0 } -Because 'every member caught up and reachable'
    }

    It 'writes RaftMemberNotFound for an id that is not a member' {
        Get-RaftMember -Id 0, 42 -ErrorVariable failures -ErrorAction SilentlyContinue | ForEach-Object Id | Should -Be @(0)
        $failures[0].FullyQualifiedErrorId | Should -Be 'RaftMemberNotFound,RaftPS.Cmdlets.GetRaftMemberCommand'
        $failures[0].TargetObject | Should -Be 42
    }
}

Describe 'Add-RaftNode' {
    It 'adds a local node that joins, catches up as a learner and becomes a voter, while writes go on' {
        1..50 | ForEach-Object { [pscustomobject]@{ Key = "grow/$_"; Value = "$_" } } | Set-RaftValue
        $added = Add-Local -Id 3 -Port $Spare[0]
        $added.Id | Should -Be 3
        $added.Role | Should -Be 'Voter'
        (Get-RaftMember).Id | Should -Be @(0, 1, 2, 3)
        $four = Connect-RaftNode 127.0.0.1 $Spare[0] -NotDefault
        (Get-RaftValue grow/50 -Connection $four).Value | Should -Be '50'
        (Get-RaftStatus -Connection $four).Members.Count | Should -Be 4
    }

    It 'stops at a learner with -AsLearner, and promotes it when run again' {
        $learner = Add-Local -Id 4 -Port $Spare[1] -AsLearner
        $learner.Role | Should -Be 'Learner'
        (Get-RaftMember -Id 4).Role | Should -Be 'Learner'
        $promoted = Add-RaftNode -Id 4 -Port $Spare[1] -CatchUpTimeoutSec 60
        $promoted.Role | Should -Be 'Voter'
        @(Get-RaftMember | Where-Object Role -eq 'Voter').Count | Should -Be 5
    }

    It 'refuses an id that is a member at another address (RaftMemberExists)' {
        $err = { Add-RaftNode -Id 4 -Port $Spare[2] -ErrorAction Stop } | Should -Throw -ErrorId 'RaftMemberExists,RaftPS.Cmdlets.AddRaftNodeCommand' -PassThru
        $err.CategoryInfo.Category | Should -Be 'ResourceExists'
    }

    It 'refuses an address another member has (RaftMemberExists)' {
        $err = { Add-RaftNode -Id 7 -Port $Config.Ports[1] -AsLearner -ErrorAction Stop } | Should -Throw -ErrorId 'RaftMemberExists,RaftPS.Cmdlets.AddRaftNodeCommand' -PassThru
        $err.Exception.Message | Should -Match 'node 1'
    }
}

Describe 'Move-RaftLeader' {
    It 'hands the leadership to the voter named, and writes keep working' {
        $target = (Get-RaftMember | Where-Object { -not $_.IsLeader -and $_.Role -eq 'Voter' } | Select-Object -First 1).Id
        $leader = Move-RaftLeader -To $target
        $leader | Should -BeOfType ([RaftPS.RaftLeader])
        $leader.Id | Should -Be $target
        (Get-RaftLeader).Id | Should -Be $target
        Set-RaftValue moved yes
        (Get-RaftValue moved).Value | Should -Be 'yes'
    }

    It 'without -To hands it to another voter' {
        # The leader's own answer (a follower's Get-RaftLeader may still name the one before the last move).
        $before = (Get-RaftMember | Where-Object IsLeader).Id
        (Move-RaftLeader).Id | Should -Not -Be $before
    }

    It 'writes RaftMemberNotFound for a node that is not a member' {
        { Move-RaftLeader -To 42 -ErrorAction Stop } | Should -Throw -ErrorId 'RaftMemberNotFound,RaftPS.Cmdlets.MoveRaftLeaderCommand'
    }
}

Describe 'Remove-RaftNode' {
    It 'removes the leader: another voter takes over and the removed node is gone from the members' {
        $leader = (Get-RaftLeader).Id
        $survivor = Get-RaftMember | Where-Object Id -ne $leader | Select-Object -First 1
        $survivorConnection = Connect-RaftNode $survivor.Address $survivor.Port -NotDefault
        Remove-RaftNode -Id $leader -Confirm:$false -Connection $survivorConnection
        $members = @(Get-RaftMember -Connection $survivorConnection)
        $members.Id | Should -Not -Contain $leader
        $members.Count | Should -Be 4
        (Get-RaftLeader -Connection $survivorConnection).Id | Should -Not -Be $leader
        Set-RaftValue after-removal 1 -Connection $survivorConnection
        $script:Removed = $leader
        $script:Survivor = $survivorConnection
    }

    It 'never adds a removed id again (RaftRefused)' {
        $err = { Add-RaftNode -Id $Removed -Port $Spare[2] -AsLearner -Connection $Survivor -ErrorAction Stop } | Should -Throw -ErrorId 'RaftRefused,RaftPS.Cmdlets.AddRaftNodeCommand' -PassThru
        $err.Exception.Message | Should -Match 'not reused'
    }

    It 'shrinks the cluster back to three voters, one change at a time, from the pipeline' {
        $extra = @(Get-RaftMember -Connection $Survivor | Sort-Object Id -Descending | Select-Object -First 1)
        $extra | Remove-RaftNode -Connection $Survivor -Confirm:$false
        @(Get-RaftMember -Connection $Survivor).Count | Should -Be 3
        (Get-RaftValue grow/1 -Connection $Survivor).Value | Should -Be '1'
    }

    It 'writes RaftMemberNotFound for an id that is not a member' {
        { Remove-RaftNode -Id 42 -Connection $Survivor -Confirm:$false -ErrorAction Stop } | Should -Throw -ErrorId 'RaftMemberNotFound,RaftPS.Cmdlets.RemoveRaftNodeCommand'
    }

    It 'completes -Id with the members seen' {
        $ids = (TabExpansion2 -inputScript 'Remove-RaftNode -Id ' -cursorColumn 'Remove-RaftNode -Id '.Length).CompletionMatches.CompletionText
        $ids | Should -Contain "$((Get-RaftMember -Connection $Survivor)[0].Id)"
    }
}

Describe 'Start-RaftCluster -Join' {
    It 'restarts a joined node from its data directory' {
        $joined = Get-RaftMember -Connection $Survivor | Where-Object Id -ge 3 | Select-Object -First 1
        if (-not $joined) { Set-ItResult -Skipped -Because 'no joined node is left'; return }
        Stop-RaftCluster -ConfigPath $Config.ConfigPath -NodeId $joined.Id
        $node = Start-RaftCluster -ConfigPath $Config.ConfigPath -DataDirectory $Config.DataDirectory -Join "$($Survivor.Address):$($Survivor.Port)" -NodeId $joined.Id -TimeoutSec 30
        $node.Id | Should -Be $joined.Id
        $node.Port | Should -Be $joined.Port
        Wait-Until { (Get-RaftMember -Connection $Survivor -Id $joined.Id).Behind -eq 0 } -TimeoutSec 30 -Because 'the restarted node catches up'
    }

    It 'refuses a node that is not a member (RaftMemberNotFound)' {
        Start-RaftCluster -ConfigPath $Config.ConfigPath -DataDirectory $Config.DataDirectory -Join "$($Survivor.Address):$($Survivor.Port)" -NodeId 42 -ErrorVariable failures -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $failures[0].FullyQualifiedErrorId | Should -Be 'RaftMemberNotFound,RaftPS.Cmdlets.StartRaftClusterCommand'
    }
}

Describe 'Resume-RaftNode' {
    It 'ends a suspension at once' {
        $follower = Get-RaftMember -Connection $Survivor | Where-Object { -not $_.IsLeader } | Select-Object -First 1
        $connection = Connect-RaftNode $follower.Address $follower.Port -NotDefault
        Suspend-RaftNode 3600 -Connection $connection
        { Get-RaftStatus -Connection $connection -TimeoutSec 1 -ErrorAction Stop } | Should -Throw
        Resume-RaftNode -Connection $connection
        Wait-Until { (Get-RaftStatus -Connection $connection -TimeoutSec 1).Role -eq 'Follower' } -TimeoutSec 15 -Because 'the node resumed'
    }
}
