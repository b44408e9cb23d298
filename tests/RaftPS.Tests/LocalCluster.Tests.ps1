# Start-RaftCluster with no config file: -Count N makes a local cluster in the user's folder, the
# session gets connected to it, Stop-RaftCluster with no arguments stops it. The user's folder is a
# temporary one (XDG_DATA_HOME, which .NET reads on Linux for LocalApplicationData).
BeforeAll {
    . "$PSScriptRoot/TestHelpers.ps1"
    $script:UserData = Join-Path ([IO.Path]::GetTempPath()) "raftps-userdata-$([guid]::NewGuid().ToString('n').Substring(0, 8))"
    $script:Empty = Join-Path $UserData 'empty-folder'
    New-Item -ItemType Directory -Path $Empty | Out-Null
    $script:SavedDataHome = $env:XDG_DATA_HOME
    $env:XDG_DATA_HOME = $UserData
    $script:Clusters = Join-Path $UserData 'RaftPS/clusters'
    Push-Location $Empty
}

AfterAll {
    Stop-RaftCluster -ErrorAction SilentlyContinue
    Pop-Location
    $env:XDG_DATA_HOME = $SavedDataHome
    Remove-Item $UserData -Recurse -Force -ErrorAction SilentlyContinue
}

Describe 'Start-RaftCluster with no config file' -Skip:(-not $IsLinux) {
    BeforeEach { try { Disconnect-RaftNode } catch { } }

    It 'tells the user what to type (RaftConfigNotFound)' {
        $err = { Start-RaftCluster } | Should -Throw -ErrorId 'RaftConfigNotFound,RaftPS.Cmdlets.StartRaftClusterCommand' -PassThru
        $err.Exception.Message | Should -Match ([regex]::Escape("There is no config.conf in '$Empty'"))
        $err.Exception.Message | Should -Match 'Start-RaftCluster -Count 3'
        $err.Exception.Message | Should -Match 'New-RaftClusterConfig'
        $err.ErrorDetails.RecommendedAction | Should -Be 'Start-RaftCluster -Count 3'
    }

    It '-Count 3 starts a local cluster in the user folder and connects the session to it' {
        $nodes = @(Start-RaftCluster -Count 3 -TimeoutSec 60)
        $folder = Join-Path $Clusters 'local'
        $nodes.Count | Should -Be 3
        $nodes.Id | Should -Be @(0, 1, 2)
        $nodes | ForEach-Object Address | Sort-Object -Unique | Should -Be '127.0.0.1'
        $nodes.Port | ForEach-Object { $_ | Should -BeGreaterOrEqual 17400; $_ | Should -BeLessThan 32768 }
        $nodes.ConfigPath | Sort-Object -Unique | Should -Be (Join-Path $folder 'config.conf')
        $nodes.DataDirectory | Should -Be @(0, 1, 2 | ForEach-Object { Join-Path $folder "node-$_" })
        Test-Path (Join-Path $Empty 'config.conf') | Should -BeFalse
        # No Connect-RaftNode: Start-RaftCluster connected the session.
        Set-RaftValue a 1
        (Get-RaftValue a).Value | Should -Be '1'
        $script:Ports = $nodes.Port
    }

    It 'Stop-RaftCluster with no arguments stops it, away from any config.conf, and clears the connection' {
        $Ports.Count | Should -Be 3
        Stop-RaftCluster
        { Get-RaftLeader } | Should -Throw -ErrorId 'RaftNotConnected,RaftPS.Cmdlets.GetRaftLeaderCommand'
        foreach ($port in $Ports) {
            $client = [System.Net.Sockets.TcpClient]::new()
            try { { $client.Connect('127.0.0.1', $port) } | Should -Throw } finally { $client.Dispose() }
        }
    }

    It 'starts the same cluster again, on its ports and with its data' {
        $nodes = @(Start-RaftCluster -Count 3 -TimeoutSec 60)
        $nodes.Port | Should -Be $Ports
        (Get-RaftValue a).Value | Should -Be '1'
        Stop-RaftCluster
    }

    It 'says so when a port of the cluster is taken (RaftLocalClusterPortInUse), and starts nothing' {
        $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, $Ports[1])
        $listener.Start()
        try {
            $err = { Start-RaftCluster -Count 3 } | Should -Throw -ErrorId 'RaftLocalClusterPortInUse,RaftPS.Cmdlets.StartRaftClusterCommand' -PassThru
            $err.Exception.Message | Should -Match "port\(s\) $($Ports[1]) on 127\.0\.0\.1"
            $err.Exception.Message | Should -Match 'another PowerShell session'
        } finally { $listener.Stop() }
        { Get-RaftLeader } | Should -Throw -ErrorId 'RaftNotConnected,RaftPS.Cmdlets.GetRaftLeaderCommand'
    }

    It 'refuses another count for an existing name (RaftLocalClusterMismatch) and starts nothing' {
        $err = { Start-RaftCluster -Count 5 } | Should -Throw -ErrorId 'RaftLocalClusterMismatch,RaftPS.Cmdlets.StartRaftClusterCommand' -PassThru
        $err.Exception.Message | Should -Match 'has 3 node\(s\), not 5'
        $err.Exception.Message | Should -Match 'Remove-Item -Recurse'
    }

    It 'keeps clusters of other names apart, on other ports; -NodeId needs one cluster (RaftClusterAmbiguous)' {
        $one = @(Start-RaftCluster -Count 1 -Name one -TimeoutSec 60)
        $two = @(Start-RaftCluster -Count 1 -Name two -TimeoutSec 60)
        $one[0].Port | Should -Not -BeIn (@($Ports) + $two[0].Port)
        Split-Path (Split-Path $two[0].ConfigPath) -Leaf | Should -Be 'two'
        { Stop-RaftCluster -NodeId 0 } | Should -Throw -ErrorId 'RaftClusterAmbiguous,RaftPS.Cmdlets.StopRaftClusterCommand'
        Stop-RaftCluster
        Get-Process -Id $one[0].ProcessId, $two[0].ProcessId -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It '-WhatIf makes no cluster' {
        Start-RaftCluster -Count 3 -Name whatif -WhatIf | Should -BeNullOrEmpty
        Test-Path (Join-Path $Clusters 'whatif') | Should -BeFalse
    }

    It 'completes -Name with the local clusters' {
        $line = 'Start-RaftCluster -Count 1 -Name t'
        (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Should -Be @('two')
        $line = 'Start-RaftCluster -Count 3 -Name '
        (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Should -Be @('local', 'one', 'two')
    }
}
