# The original Python client's walkthrough (README-original.md), step by step through the cmdlets:
#   connect 127.0.0.1 50001; getleader; getval key1 (None); setval key1 100; getval key1 (100)
#   connect <leader>; getleader; suspend 2; getleader (another node, higher term)
# on its own cluster, since suspending the leader disturbs it.
BeforeAll {
    . "$PSScriptRoot/TestHelpers.ps1"
    $script:Config = New-TestClusterConfig -Nodes 3
    $script:Nodes = @(Start-RaftCluster -ConfigPath $Config.ConfigPath -DataDirectory $Config.DataDirectory -TimeoutSec 60)
}

AfterAll {
    Remove-TestCluster $Config
}

Describe 'The original walkthrough' {
    It 'connects to the node on the second port, reads, writes, and survives suspending the leader' {
        # > connect 127.0.0.1 50001
        $connection = Connect-RaftNode 127.0.0.1 $Config.Ports[1]
        $connection.Port | Should -Be $Config.Ports[1]

        # > getleader
        $leader = Get-RaftLeader
        $leader.Id | Should -BeIn 0, 1, 2
        $leader.Port | Should -Be $Config.Ports[$leader.Id]
        "$leader" | Should -Be "$($leader.Id) 127.0.0.1:$($leader.Port)"

        # > getval key1   -> None
        Get-RaftValue key1 -ErrorVariable missing -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $missing[0].FullyQualifiedErrorId | Should -Be 'RaftKeyNotFound,RaftPS.Cmdlets.GetRaftValueCommand'

        # > setval key1 100; getval key1 -> 100
        Set-RaftValue key1 100
        (Get-RaftValue key1).Value | Should -Be '100'

        # > connect <the leader>; suspend 2
        $old = Get-RaftLeader | Connect-RaftNode
        $clock = [Diagnostics.Stopwatch]::StartNew()
        Suspend-RaftNode 2
        $clock.Elapsed.TotalSeconds | Should -BeLessThan 1.5 -Because 'Suspend-RaftNode returns once the node accepted, not after the period'

        # > getleader -> another node, with a higher term (the client retries through the others)
        $script:newLeader = $null
        Wait-Until { $script:newLeader = Get-RaftLeader -TimeoutSec 3; $newLeader.Id -ne $leader.Id -and $newLeader.Term -gt $leader.Term } -TimeoutSec 10 -Because 'another leader'
        $newLeader.Term | Should -BeGreaterThan $leader.Term

        # A write during the pause goes through the other members.
        Set-RaftValue key2 'written during the pause'

        # After the pause, the old leader serves key1 and the value written meanwhile.
        $oldNode = Connect-RaftNode $old.Address $old.Port -NotDefault
        Wait-Until { $status = Get-RaftStatus -Connection $oldNode -TimeoutSec 1; $status.Role -ne 'Leader' -or $status.Term -gt $leader.Term } -TimeoutSec 15 -Because 'the old leader to resume'
        (Get-RaftStatus -Connection $oldNode).Id | Should -Be $leader.Id
        (Get-RaftValue key1, key2 -Connection $oldNode).Value | Should -Be @('100', 'written during the pause')
    }
}
