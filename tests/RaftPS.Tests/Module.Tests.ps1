# The module without a running cluster: manifest, types, help, formats, parameter binding,
# completion, errors without a connection, Ctrl+C, and a node that fails at start-up.
BeforeAll {
    . "$PSScriptRoot/TestHelpers.ps1"
    $script:Cmdlets = @('Start-RaftCluster', 'Stop-RaftCluster', 'Connect-RaftNode', 'Disconnect-RaftNode',
        'Get-RaftLeader', 'Set-RaftValue', 'Get-RaftValue', 'Remove-RaftValue', 'Suspend-RaftNode', 'Get-RaftStatus',
        'Watch-RaftValue', 'Wait-RaftValue', 'Lock-RaftKey', 'Unlock-RaftKey')
    $script:ConnectedCmdlets = @('Disconnect-RaftNode', 'Get-RaftLeader', 'Set-RaftValue', 'Get-RaftValue',
        'Remove-RaftValue', 'Suspend-RaftNode', 'Get-RaftStatus', 'Watch-RaftValue', 'Wait-RaftValue', 'Lock-RaftKey')
}

Describe 'The RaftPS module' {
    It 'imports from the repository root and exports the fourteen cmdlets' {
        $exported = (Get-Module RaftPS).ExportedCmdlets.Keys
        foreach ($name in $Cmdlets) { $exported | Should -Contain $name }
    }

    It 'lists the same cmdlets in both manifests, and only cmdlets the dll has' {
        $outer = (Import-PowerShellDataFile (Join-Path $RepoRoot 'RaftPS.psd1')).CmdletsToExport
        $inner = (Import-PowerShellDataFile (Join-Path $RepoRoot 'out/RaftPS/RaftPS.psd1')).CmdletsToExport
        $outer | Should -Be $inner
        $exported = (Get-Module RaftPS).ExportedCmdlets.Keys
        foreach ($name in $inner) { $exported | Should -Contain $name }
    }

    It 'declares RaftPS output types on <_>' -ForEach @('Start-RaftCluster', 'Connect-RaftNode', 'Get-RaftLeader', 'Set-RaftValue', 'Get-RaftValue', 'Get-RaftStatus',
        'Watch-RaftValue', 'Wait-RaftValue', 'Lock-RaftKey') {
        $types = (Get-Command $_).OutputType.Type
        $types | Should -Not -BeNullOrEmpty
        $types | ForEach-Object { $_.Namespace | Should -Be 'RaftPS' }
    }

    It 'exposes no protobuf type in any public signature' {
        $assembly = [RaftPS.RaftConnection].Assembly
        foreach ($type in $assembly.GetExportedTypes()) {
            $type.Namespace | Should -Not -Be 'RaftPS.Protocol'
            foreach ($property in $type.GetProperties()) { $property.PropertyType.Namespace | Should -Not -Match 'Protobuf|RaftPS\.Protocol' }
        }
    }

    It 'has a table view for <_>' -ForEach @('RaftPS.RaftConnection', 'RaftPS.RaftLeader', 'RaftPS.RaftValue', 'RaftPS.RaftNodeProcess', 'RaftPS.RaftStatus',
        'RaftPS.RaftChange', 'RaftPS.RaftLock') {
        $view = Get-FormatData -TypeName $_
        $view | Should -Not -BeNullOrEmpty
        $table = $view.FormatViewDefinition.Control | Where-Object { $_ -is [System.Management.Automation.TableControl] }
        $table.Headers.Count | Should -Be $table.Rows[0].Columns.Count
    }

    It 'shows a connection as a table of Address and Port' {
        $text = Connect-RaftNode 127.0.0.1 50001 -NotDefault | Out-String
        $text | Should -Match 'Address\s+Port'
        $text | Should -Match '127\.0\.0\.1\s+50001'
    }
}

Describe 'Help' {
    It '<_> has a synopsis, a description, every parameter described and an example' -ForEach @(
        'Start-RaftCluster', 'Stop-RaftCluster', 'Connect-RaftNode', 'Disconnect-RaftNode', 'Get-RaftLeader',
        'Set-RaftValue', 'Get-RaftValue', 'Remove-RaftValue', 'Suspend-RaftNode', 'Get-RaftStatus',
        'Watch-RaftValue', 'Wait-RaftValue', 'Lock-RaftKey', 'Unlock-RaftKey') {
        $help = Get-Help $_ -Full
        $help.Synopsis | Should -Not -BeNullOrEmpty
        $help.Synopsis | Should -Not -Match "^\s*$_\s*\["   # not the auto-generated syntax stub
        ($help.Description.Text -join ' ') | Should -Not -BeNullOrEmpty
        $common = [System.Management.Automation.Cmdlet]::CommonParameters
        $parameters = (Get-Command $_).Parameters.Keys | Where-Object { $_ -notin $common }
        $described = @($help.Parameters.Parameter | Where-Object { ($_.Description.Text -join '').Trim() })
        foreach ($name in $parameters) { $described.Name | Should -Contain $name -Because "-$name of $_ needs a description" }
        @($help.Examples.Example).Count | Should -BeGreaterThan 0
        @(Get-Help $_ -Examples).Examples.Example.Code | Should -Not -BeNullOrEmpty
    }

    It 'includes the original walkthrough among the examples' {
        $code = (Get-Help Connect-RaftNode -Examples).Examples.Example.Code -join "`n"
        $code | Should -Match 'Connect-RaftNode 127\.0\.0\.1 50001'
        $code | Should -Match 'Set-RaftValue key1 100'
        ((Get-Help Suspend-RaftNode -Examples).Examples.Example.Code -join "`n") | Should -Match 'Suspend-RaftNode 2'
    }
}

Describe 'Parameters and errors without a cluster' {
    BeforeEach { try { Disconnect-RaftNode } catch { } }

    It 'Connect-RaftNode -NotDefault returns a typed connection and leaves no current connection' {
        $connection = Connect-RaftNode 127.0.0.1 50001 -NotDefault
        $connection | Should -BeOfType ([RaftPS.RaftConnection])
        $connection.Address | Should -Be '127.0.0.1'
        $connection.Port | Should -Be 50001
        $connection.ClientId | Should -Not -Be 0
        { Get-RaftLeader } | Should -Throw -ErrorId 'RaftNotConnected,RaftPS.Cmdlets.GetRaftLeaderCommand'
    }

    It 'gives each connection its own client id' {
        (Connect-RaftNode h 1 -NotDefault).ClientId | Should -Not -Be (Connect-RaftNode h 1 -NotDefault).ClientId
    }

    It 'rejects a port outside 1-65535' {
        { Connect-RaftNode 127.0.0.1 70000 -NotDefault } | Should -Throw -ErrorId 'ParameterArgumentValidationError,RaftPS.Cmdlets.ConnectRaftNodeCommand'
    }

    It 'rejects an empty key before any call' {
        { Set-RaftValue '' 1 -Connection (Connect-RaftNode h 1 -NotDefault) } | Should -Throw -ErrorId 'ParameterArgumentValidationError,RaftPS.Cmdlets.SetRaftValueCommand'
    }

    It '<_> without a connection fails with RaftNotConnected (ConnectionError)' -ForEach @(
        @{ Name = 'Disconnect-RaftNode'; Run = { Disconnect-RaftNode } }
        @{ Name = 'Get-RaftLeader'; Run = { Get-RaftLeader } }
        @{ Name = 'Set-RaftValue'; Run = { Set-RaftValue k v } }
        @{ Name = 'Get-RaftValue'; Run = { Get-RaftValue k } }
        @{ Name = 'Remove-RaftValue'; Run = { Remove-RaftValue k } }
        @{ Name = 'Suspend-RaftNode'; Run = { Suspend-RaftNode 1 } }
        @{ Name = 'Get-RaftStatus'; Run = { Get-RaftStatus } }
        @{ Name = 'Watch-RaftValue'; Run = { Watch-RaftValue k } }
        @{ Name = 'Wait-RaftValue'; Run = { Wait-RaftValue k } }
        @{ Name = 'Lock-RaftKey'; Run = { Lock-RaftKey k } }
    ) {
        $class = ($Name -replace '-', '') + 'Command'
        $class = $class.Substring(0, 1).ToUpper() + $class.Substring(1)
        $err = { & $Run } | Should -Throw -ErrorId "RaftNotConnected,RaftPS.Cmdlets.$class" -PassThru
        $err.CategoryInfo.Category | Should -Be 'ConnectionError'
        $err.Exception.Message | Should -Match 'Connect-RaftNode'
    }

    It 'takes -Connection on every cmdlet but Start, Stop, Connect and Unlock (a lock knows its connection)' {
        foreach ($name in $ConnectedCmdlets) { (Get-Command $name).Parameters.Keys | Should -Contain 'Connection' }
        foreach ($name in 'Start-RaftCluster', 'Stop-RaftCluster', 'Connect-RaftNode', 'Unlock-RaftKey') { (Get-Command $name).Parameters.Keys | Should -Not -Contain 'Connection' }
    }

    It 'supports -WhatIf on the state-changing cmdlets' {
        foreach ($name in 'Start-RaftCluster', 'Stop-RaftCluster', 'Set-RaftValue', 'Remove-RaftValue', 'Suspend-RaftNode') {
            (Get-Command $name).Parameters.Keys | Should -Contain 'WhatIf'
        }
        Connect-RaftNode 127.0.0.1 1 | Out-Null
        # No call is made: the node does not exist, yet nothing fails.
        Set-RaftValue k v -WhatIf
        Remove-RaftValue k -WhatIf
        Suspend-RaftNode 1 -WhatIf
    }

    It 'keeps the current connection per runspace' {
        Connect-RaftNode 127.0.0.1 50001 | Out-Null
        $manifest = Join-Path $RepoRoot 'RaftPS.psd1'
        $ids = 1..2 | ForEach-Object -Parallel {
            Import-Module $using:manifest
            try { Get-RaftLeader -ErrorAction Stop } catch { $_.FullyQualifiedErrorId }
        }
        $ids | Should -Be @('RaftNotConnected,RaftPS.Cmdlets.GetRaftLeaderCommand', 'RaftNotConnected,RaftPS.Cmdlets.GetRaftLeaderCommand')
    }

    It 'fails with RaftNodeUnreachable (ConnectionError) after -TimeoutSec when no node answers' {
        $port = Get-FreePort
        $connection = Connect-RaftNode 127.0.0.1 $port -NotDefault
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $err = { Get-RaftValue k -Connection $connection -TimeoutSec 1 -ErrorAction Stop } |
            Should -Throw -ErrorId 'RaftNodeUnreachable,RaftPS.Cmdlets.GetRaftValueCommand' -PassThru
        $clock.Elapsed.TotalSeconds | Should -BeLessThan 5
        $err.CategoryInfo.Category | Should -Be 'ConnectionError'
        $err.TargetObject | Should -Be 'k'
        $err.Exception.Message | Should -Match "127\.0\.0\.1:$port"
    }

    It 'stops promptly on Ctrl+C (StopProcessing cancels the call)' {
        $port = Get-FreePort
        $ps = [powershell]::Create()
        [void]$ps.AddScript("Import-Module '$(Join-Path $RepoRoot 'RaftPS.psd1')'; Get-RaftLeader -Connection (Connect-RaftNode 127.0.0.1 $port -NotDefault) -TimeoutSec 60")
        $handle = $ps.BeginInvoke()
        Start-Sleep -Milliseconds 1500
        $handle.IsCompleted | Should -BeFalse
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $ps.Stop()
        $clock.Elapsed.TotalSeconds | Should -BeLessThan 2
        $ps.InvocationStateInfo.State | Should -Be 'Stopped'
        $ps.Dispose()
    }

    It 'stops a pipeline of writes promptly on Ctrl+C, with calls in flight and waiting' {
        # 1,000 writes to a node that is not there: 128 in flight retrying, the rest not started.
        $port = Get-FreePort
        $ps = [powershell]::Create()
        [void]$ps.AddScript("Import-Module '$(Join-Path $RepoRoot 'RaftPS.psd1')'; `$c = Connect-RaftNode 127.0.0.1 $port -NotDefault; 1..1000 | ForEach-Object { [pscustomobject]@{ Key = `"k`$_`"; Value = 'v' } } | Set-RaftValue -Connection `$c -TimeoutSec 60")
        $handle = $ps.BeginInvoke()
        Start-Sleep -Milliseconds 1500
        $handle.IsCompleted | Should -BeFalse
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $ps.Stop()
        $clock.Elapsed.TotalSeconds | Should -BeLessThan 3
        $ps.InvocationStateInfo.State | Should -Be 'Stopped'
        $ps.Streams.Error.Count | Should -Be 0
        $ps.Dispose()
    }
}

Describe 'Tab completion' {
    It 'completes -NodeId from the config' {
        $config = New-TestClusterConfig -Nodes 3
        try {
            $line = "Start-RaftCluster -ConfigPath '$($config.ConfigPath)' -NodeId "
            $result = TabExpansion2 -inputScript $line -cursorColumn $line.Length
            $result.CompletionMatches.CompletionText | Should -Be @('0', '1', '2')
            $result.CompletionMatches[1].ToolTip | Should -Match "127\.0\.0\.1:$($config.Ports[1])"
        } finally { Remove-Item $config.Directory -Recurse -Force }
    }

    It 'completes -NodeId of Stop-RaftCluster from ./config.conf' {
        $config = New-TestClusterConfig -Nodes 2
        Push-Location $config.Directory
        try {
            $line = 'Stop-RaftCluster -NodeId '
            (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Should -Be @('0', '1')
        } finally { Pop-Location; Remove-Item $config.Directory -Recurse -Force }
    }
}

Describe 'Start-RaftCluster without a working cluster' {
    It 'fails with RaftConfigNotFound for a missing config' {
        { Start-RaftCluster -ConfigPath (Join-Path ([IO.Path]::GetTempPath()) 'no-such.conf') } |
            Should -Throw -ErrorId 'RaftConfigNotFound,RaftPS.Cmdlets.StartRaftClusterCommand'
    }

    It 'reports a node that exits at start-up, quoting the end of its log' {
        $config = New-TestClusterConfig -Nodes 1 -ExtraLines 'this line is not a node'
        try {
            $clock = [Diagnostics.Stopwatch]::StartNew()
            $nodes = Start-RaftCluster -ConfigPath $config.ConfigPath -DataDirectory $config.DataDirectory -TimeoutSec 20 -ErrorVariable failures -ErrorAction SilentlyContinue
            $clock.Elapsed.TotalSeconds | Should -BeLessThan 15
            $nodes | Should -BeNullOrEmpty
            $failures.Count | Should -Be 1
            $failures[0].FullyQualifiedErrorId | Should -Be 'RaftNodeExited,RaftPS.Cmdlets.StartRaftClusterCommand'
            $failures[0].TargetObject.Id | Should -Be 0
            $failures[0].Exception.Message | Should -Match 'exited with code'
            $failures[0].Exception.Message | Should -Match 'this line is not a node'
            Test-Path (Join-Path $config.DataDirectory 'node-0/node.log') | Should -BeTrue
        } finally { Remove-TestCluster $config }
    }
}
