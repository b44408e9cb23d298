# A cluster whose config.conf gives IPv6 addresses, started and driven from the module (the servers'
# own connections to each other: tests/RaftServer.Tests/Integration/Ipv6ProcessTests.cs).
BeforeAll {
    . "$PSScriptRoot/TestHelpers.ps1"
    $script:Config = New-TestClusterConfig -Nodes 3 -HostAddress '[::1]'
}

AfterAll {
    Remove-TestCluster $Config
}

Describe 'A cluster on IPv6 addresses' {
    It 'starts from a config of bracketed IPv6 addresses, connects to a follower and serves reads and writes' {
        $nodes = @(Start-RaftCluster -ConfigPath $Config.ConfigPath -DataDirectory $Config.DataDirectory -TimeoutSec 60)
        $nodes | ForEach-Object Address | Should -Be @('::1', '::1', '::1')
        "$($nodes[0])" | Should -Be "0 [::1]:$($Config.Ports[0]) (process $($nodes[0].ProcessId))"
        $leader = Get-RaftLeader -Connection $nodes[0] -TimeoutSec 20
        $follower = $nodes | Where-Object Id -ne $leader.Id | Select-Object -First 1
        Connect-RaftNode $follower.Address $follower.Port | Out-Null

        Set-RaftValue v6 works | Out-Null
        (Get-RaftValue v6).Value | Should -Be 'works'
        $members = @(Get-RaftMember)
        $members | ForEach-Object Address | Should -Be @('::1', '::1', '::1')
        "$($members[1])" | Should -Be "1 [::1]:$($Config.Ports[1])"
    }
}
