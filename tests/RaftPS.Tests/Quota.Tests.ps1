# The storage quota from the module: a three-node cluster started with --quota-bytes 1 MiB
# (RAFTPS_SERVER_ARGS), filled until Set-RaftValue writes RaftNoSpace.

BeforeAll {
    . "$PSScriptRoot/TestHelpers.ps1"
    $script:Config = New-TestClusterConfig
    $saved = $env:RAFTPS_SERVER_ARGS
    $env:RAFTPS_SERVER_ARGS = '--quota-bytes 1048576'
    try {
        $script:Nodes = @(Start-RaftCluster -ConfigPath $Config.ConfigPath -DataDirectory $Config.DataDirectory -TimeoutSec 60)
    }
    finally {
        $env:RAFTPS_SERVER_ARGS = $saved
    }
}

AfterAll {
    Remove-TestCluster $Config
}

Describe 'Storage quota' {
    It 'refuses writes with RaftNoSpace naming the key, serves reads and deletes, and takes writes again after deletes' {
        $value = 'x' * 65536
        $written = [System.Collections.Generic.List[string]]::new()
        $failed = $null
        foreach ($i in 1..40) {
            Set-RaftValue "k$i" $value -ErrorVariable failed -ErrorAction SilentlyContinue
            if ($failed) { break }
            $written.Add("k$i")
        }
        $failed | Should -HaveCount 1
        $failed[0].FullyQualifiedErrorId | Should -BeLike 'RaftNoSpace,*'
        $failed[0].CategoryInfo.Category | Should -Be 'QuotaExceeded'
        $failed[0].TargetObject | Should -Be "k$($written.Count + 1)"
        $failed[0].Exception.Message | Should -Match "NOSPACE: the cluster's storage quota of 1048576 bytes is used up"
        $failed[0].ErrorDetails.RecommendedAction | Should -Match 'Remove-RaftValue'

        $status = Get-RaftLeader | Get-RaftStatus
        $status.NoSpaceAlarm | Should -BeTrue
        $status.QuotaBytes | Should -Be 1048576
        (Get-RaftStatus -All | Where-Object IsLeader).NoSpaceAlarm | Should -BeTrue

        # Nothing refused was written; everything acknowledged reads back.
        Get-RaftValue "k$($written.Count + 1)" -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        (Get-RaftValue $written | Measure-Object).Count | Should -Be $written.Count

        # A pipeline (SetMany batches): one RaftNoSpace per item, each naming its key.
        $batch = $null
        @([pscustomobject]@{ Key = 'b1'; Value = '1' }, [pscustomobject]@{ Key = 'b2'; Value = '2' }) |
            Set-RaftValue -ErrorVariable batch -ErrorAction SilentlyContinue
        $batch | Should -HaveCount 2
        $batch.FullyQualifiedErrorId | ForEach-Object { $_ | Should -BeLike 'RaftNoSpace,*' }
        $batch.TargetObject | Should -Be @('b1', 'b2')

        # Deletes are served and clear the alarm once the keys are at 90% of the quota.
        $written | Select-Object -First 4 | ForEach-Object { Remove-RaftValue $_ }
        Wait-Until { -not (Get-RaftLeader | Get-RaftStatus).NoSpaceAlarm } -Because 'the alarm to clear after deletes'
        Set-RaftValue after 1
        (Get-RaftValue after).Value | Should -Be '1'
    }
}
