# Watch-RaftCluster in a real terminal: tmux runs it in a pane, the test kills the leader and reads
# the pane until the change shows; then q ends the view. Needs tmux (build.ps1 test installs it
# as root with apt-get); skipped, saying why, where there is none.
BeforeDiscovery {
    $script:NoTmux = -not (Get-Command tmux -ErrorAction Ignore)
}

BeforeAll {
    . "$PSScriptRoot/TestHelpers.ps1"
    $script:Session = "raftps-watch-$([guid]::NewGuid().ToString('n').Substring(0, 8))"
    function script:Get-Pane([switch] $Escapes) {
        $arguments = @('capture-pane', '-p', '-t', $Session) + @(if ($Escapes) { '-e' })
        (& tmux @arguments) -join "`n"
    }
}

AfterAll {
    if (Get-Command tmux -ErrorAction Ignore) { & tmux kill-session -t $Session 2>$null }
    Remove-TestCluster $script:Config
}

Describe 'Watch-RaftCluster in tmux' -Skip:$NoTmux {
    It 'shows the killed leader as unreachable within 1 s, in red, and ends on q' {
        $script:Config = New-TestClusterConfig -Nodes 3
        $nodes = @(Start-RaftCluster -ConfigPath $Config.ConfigPath -DataDirectory $Config.DataDirectory -TimeoutSec 60)
        Connect-RaftNode $nodes[0].Address $nodes[0].Port | Out-Null
        $leader = Get-RaftLeader
        $watched = $nodes | Where-Object Id -ne $leader.Id | Select-Object -First 1
        $command = "Import-Module '$RepoRoot/RaftPS.psd1'; Connect-RaftNode 127.0.0.1 $($watched.Port) | Out-Null; Watch-RaftCluster -RefreshSec 0.5"
        $launcher = Join-Path $Config.Directory 'watch.sh'
        # The same pwsh as this test (dotnet pwsh from the tool manifest: run it from the repository).
        "cd '$RepoRoot' && exec dotnet pwsh -NoProfile -NoLogo -Command `"$command`"" | Set-Content $launcher
        & tmux new-session -d -s $Session -x 150 -y 20 "bash '$launcher'"
        $LASTEXITCODE | Should -Be 0

        $leaderRow = "127\.0\.0\.1:$($leader.Port)\s+leader\s"
        Wait-Until { (Get-Pane) -match $leaderRow } -TimeoutSec 60 -Because "the view to show node $($leader.Id) as leader`n$(Get-Pane)"

        $leaderProcess = $nodes | Where-Object Id -eq $leader.Id
        Stop-Process -Id $leaderProcess.ProcessId -Force
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $goneRow = "127\.0\.0\.1:$($leader.Port)\s.*unreachable"
        while ((Get-Pane) -notmatch $goneRow -and $clock.Elapsed.TotalSeconds -lt 10) { Start-Sleep -Milliseconds 20 }
        $shownAfter = $clock.Elapsed.TotalSeconds
        Write-Host "the killed leader showed as unreachable after $([math]::Round($shownAfter, 3)) s"
        $shownAfter | Should -BeLessThan 1.0 -Because "the pane was:`n$(Get-Pane)"

        # Its row is red (SGR 31) in the terminal.
        (Get-Pane -Escapes) -split "`n" | Where-Object { $_ -match $goneRow } | Should -Match "`e\[31m"
        # A new leader among the others shows next.
        Wait-Until { (Get-Pane) -match '\bleader\b' -and (Get-Pane) -notmatch $leaderRow } -Because "a new leader in the view`n$(Get-Pane)"

        & tmux send-keys -t $Session q
        Wait-Until { & tmux has-session -t $Session 2>$null; $LASTEXITCODE -ne 0 } -TimeoutSec 10 -Because 'q to end the view (and its pane)'
    }
}
