# The module without a running cluster: manifest, types, help, formats, parameter binding,
# completion, errors without a connection, Ctrl+C, and a node that fails at start-up.
BeforeAll {
    . "$PSScriptRoot/TestHelpers.ps1"
    $script:Cmdlets = @('Start-RaftCluster', 'Stop-RaftCluster', 'Connect-RaftNode', 'Disconnect-RaftNode',
        'Get-RaftLeader', 'Set-RaftValue', 'Get-RaftValue', 'Remove-RaftValue', 'Suspend-RaftNode', 'Get-RaftStatus',
        'Get-RaftMember', 'Add-RaftNode', 'Remove-RaftNode', 'Move-RaftLeader', 'Resume-RaftNode', 'New-RaftClusterConfig',
        'Watch-RaftValue', 'Wait-RaftValue', 'Lock-RaftKey', 'Unlock-RaftKey', 'Watch-RaftCluster', 'New-RaftCertificate', 'New-RaftUserToken')
    $script:ConnectedCmdlets = @('Disconnect-RaftNode', 'Get-RaftLeader', 'Set-RaftValue', 'Get-RaftValue',
        'Remove-RaftValue', 'Suspend-RaftNode', 'Get-RaftStatus', 'Get-RaftMember', 'Add-RaftNode', 'Remove-RaftNode',
        'Move-RaftLeader', 'Resume-RaftNode', 'Watch-RaftValue', 'Wait-RaftValue', 'Lock-RaftKey')
}

Describe 'The RaftPS module' {
    It 'imports from the repository root and exports its cmdlets' {
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
        'Get-RaftMember', 'Add-RaftNode', 'Move-RaftLeader', 'Watch-RaftValue', 'Wait-RaftValue', 'Lock-RaftKey', 'New-RaftCertificate', 'New-RaftUserToken') {
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

    It 'has a table view for <_>' -ForEach @('RaftPS.RaftConnection', 'RaftPS.RaftLeader', 'RaftPS.RaftValue', 'RaftPS.RaftNodeProcess', 'RaftPS.RaftStatus', 'RaftPS.RaftMember',
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
        'Get-RaftMember', 'Add-RaftNode', 'Remove-RaftNode', 'Move-RaftLeader', 'Resume-RaftNode', 'New-RaftClusterConfig',
        'Watch-RaftValue', 'Wait-RaftValue', 'Lock-RaftKey', 'Unlock-RaftKey', 'New-RaftCertificate', 'New-RaftUserToken') {
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
        @{ Name = 'Get-RaftMember'; Run = { Get-RaftMember } }
        @{ Name = 'Add-RaftNode'; Run = { Add-RaftNode 9 127.0.0.1 9 } }
        @{ Name = 'Remove-RaftNode'; Run = { Remove-RaftNode 9 } }
        @{ Name = 'Move-RaftLeader'; Run = { Move-RaftLeader } }
        @{ Name = 'Resume-RaftNode'; Run = { Resume-RaftNode } }
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
        foreach ($name in 'Start-RaftCluster', 'Stop-RaftCluster', 'Connect-RaftNode', 'New-RaftClusterConfig', 'Unlock-RaftKey') { (Get-Command $name).Parameters.Keys | Should -Not -Contain 'Connection' }
    }

    It 'supports -WhatIf on the state-changing cmdlets' {
        foreach ($name in 'Start-RaftCluster', 'Stop-RaftCluster', 'Set-RaftValue', 'Remove-RaftValue', 'Suspend-RaftNode',
            'Add-RaftNode', 'Remove-RaftNode', 'Move-RaftLeader', 'Resume-RaftNode', 'New-RaftClusterConfig') {
            (Get-Command $name).Parameters.Keys | Should -Contain 'WhatIf'
        }
        Connect-RaftNode 127.0.0.1 1 | Out-Null
        # No call is made: the node does not exist, yet nothing fails.
        Set-RaftValue k v -WhatIf
        Remove-RaftValue k -WhatIf
        Suspend-RaftNode 1 -WhatIf
        Add-RaftNode 9 127.0.0.1 9 -WhatIf
        Remove-RaftNode 9 -WhatIf
        Move-RaftLeader -WhatIf
        Resume-RaftNode -WhatIf
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

Describe 'The server for this machine' {
    BeforeAll {
        $script:Internal = [System.Reflection.BindingFlags]'Public, NonPublic, Static'
        $script:Locator = [RaftPS.RaftConnection].Assembly.GetType('RaftPS.Cluster.ServerLocator', $true)
    }

    It 'is looked for under server/<rid>: <Os> <Arch> musl=<Musl> -> <Expected>' -ForEach @(
        @{ Os = 'windows'; Arch = 'X64'; Musl = $false; Expected = @('win-x64') }
        @{ Os = 'windows'; Arch = 'Arm64'; Musl = $false; Expected = @('win-arm64', 'win-x64') }
        @{ Os = 'osx'; Arch = 'X64'; Musl = $false; Expected = @('osx-x64') }
        @{ Os = 'osx'; Arch = 'Arm64'; Musl = $false; Expected = @('osx-arm64', 'osx-x64') }
        @{ Os = 'linux'; Arch = 'X64'; Musl = $false; Expected = @('linux-x64') }
        @{ Os = 'linux'; Arch = 'Arm64'; Musl = $false; Expected = @('linux-arm64') }
        @{ Os = 'linux'; Arch = 'X64'; Musl = $true; Expected = @('linux-musl-x64') }
    ) {
        $method = $Locator.GetMethod('CandidateRuntimes', $Internal)
        $method.Invoke($null, @($Os, [System.Runtime.InteropServices.Architecture]$Arch, $Musl)) | Should -Be $Expected
    }

    It 'takes the first candidate present, the executable named for its platform, else the portable dll' {
        $folder = Join-Path ([IO.Path]::GetTempPath()) "raftps-locator-$([guid]::NewGuid().ToString('n').Substring(0, 8))"
        try {
            New-Item -ItemType Directory -Path "$folder/win-x64", "$folder/osx-x64", "$folder/osx-arm64" | Out-Null
            Set-Content "$folder/win-x64/RaftServer.exe" 'x'
            Set-Content "$folder/osx-x64/RaftServer" 'x'
            $find = $Locator.GetMethod('Find', $Internal, $null, [type[]]@([string], [System.Collections.Generic.IEnumerable[string]]), $null)
            $folder = [string]$folder
            $found = $find.Invoke($null, @($folder, [string[]]@('win-arm64', 'win-x64')))
            $found.Path | Should -Be (Join-Path $folder 'win-x64/RaftServer.exe')
            $found.RuntimeIdentifier | Should -Be 'win-x64'
            # osx-arm64 has a folder but no server in it: the x64 one runs under Rosetta.
            $find.Invoke($null, @($folder, [string[]]@('osx-arm64', 'osx-x64'))).Path | Should -Be (Join-Path $folder 'osx-x64/RaftServer')
            $find.Invoke($null, @($folder, [string[]]@('linux-x64'))) | Should -BeNullOrEmpty
            Set-Content "$folder/RaftServer.dll" 'x'
            $portable = $find.Invoke($null, @($folder, [string[]]@('linux-x64')))
            $portable.Path | Should -Be (Join-Path $folder 'RaftServer.dll')
            $portable.RunsUnderDotnet | Should -BeTrue
        } finally { Remove-Item $folder -Recurse -Force }
    }

    It 'makes a server that lost its executable bit runnable again' -Skip:$IsWindows {
        $folder = Join-Path ([IO.Path]::GetTempPath()) "raftps-exec-$([guid]::NewGuid().ToString('n').Substring(0, 8))"
        try {
            New-Item -ItemType Directory -Path $folder | Out-Null
            $file = Join-Path $folder 'RaftServer'
            Set-Content $file 'x'
            [IO.File]::SetUnixFileMode($file, [IO.UnixFileMode]'UserRead, UserWrite, GroupRead, OtherRead')
            $type = [RaftPS.RaftConnection].Assembly.GetType('RaftPS.Cluster.ExecutableFile', $true)
            $type.GetMethod('EnsureRunnable', $Internal).Invoke($null, @([string]$file, [string](Join-Path $folder 'copies'))) | Should -Be $file
            [IO.File]::GetUnixFileMode($file).HasFlag([IO.UnixFileMode]'UserExecute, GroupExecute, OtherExecute') | Should -BeTrue
        } finally { Remove-Item $folder -Recurse -Force }
    }

    It 'lays out the Windows Job Object limits as winnt.h does (64-bit)' {
        $job = [RaftPS.RaftConnection].Assembly.GetType('RaftPS.Cluster.WindowsJobObject', $true)
        $size = { param($name) [System.Runtime.InteropServices.Marshal]::SizeOf([type]$job.GetNestedType($name, [System.Reflection.BindingFlags]::NonPublic)) }
        [IntPtr]::Size | Should -Be 8
        & $size 'JobObjectBasicLimitInformation' | Should -Be 64
        & $size 'IoCounters' | Should -Be 48
        & $size 'JobObjectExtendedLimitInformation' | Should -Be 144
        $job.GetField('JobObjectLimitKillOnJobClose', [System.Reflection.BindingFlags]'NonPublic, Static').GetValue($null) | Should -Be 0x2000
    }
}

Describe 'New-RaftClusterConfig' {
    BeforeEach {
        $script:Folder = Join-Path ([IO.Path]::GetTempPath()) "raftps-newconf-$([guid]::NewGuid().ToString('n').Substring(0, 8))"
        New-Item -ItemType Directory -Path $Folder | Out-Null
        Push-Location $Folder
    }
    AfterEach { Pop-Location; Remove-Item $Folder -Recurse -Force }
    BeforeAll {
        function script:Get-NodeLines { Get-Content (Join-Path $Folder 'config.conf') | Where-Object { $_ -notmatch '^#' } }
    }

    It 'writes ./config.conf with ids from 0, one port per machine and consecutive ports on one machine' {
        $file = New-RaftClusterConfig -HostName db1, db2, db3
        $file | Should -BeOfType ([IO.FileInfo])
        $file.FullName | Should -Be (Join-Path $Folder 'config.conf')
        Get-NodeLines | Should -Be @('0 db1 50000', '1 db2 50000', '2 db3 50000')
        New-RaftClusterConfig 127.0.0.1, 127.0.0.1, db1:7000, 127.0.0.1 -Port 6000 -Path dev.conf | Out-Null
        Get-Content dev.conf | Where-Object { $_ -notmatch '^#' } | Should -Be @('0 127.0.0.1 6000', '1 127.0.0.1 6001', '2 db1 7000', '3 127.0.0.1 6002')
    }

    It 'takes hosts from the pipeline and warns about an even number of nodes' {
        'a', 'b' | New-RaftClusterConfig -WarningVariable warnings -WarningAction SilentlyContinue | Out-Null
        Get-NodeLines | Should -Be @('0 a 50000', '1 b 50000')
        $warnings[0] | Should -Match 'survives as many failed nodes as one of 1'
    }

    It 'takes IPv6 addresses bare or in brackets, a port only after brackets' {
        New-RaftClusterConfig '::1', '[::1]', '[fd00::5]:7000', 'fd00::6' -Port 6000 | Out-Null
        Get-NodeLines | Should -Be @('0 ::1 6000', '1 ::1 6001', '2 fd00::5 7000', '3 fd00::6 6000')
    }

    It 'writes nothing for a bad host (RaftInvalidHost), naming each one' {
        New-RaftClusterConfig good, 'bad host', 'x:99999', '[db1]:7000', '[::1]7000', 'fd00::g' -ErrorVariable failures -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $failures.Count | Should -Be 5
        $failures | ForEach-Object { $_.FullyQualifiedErrorId | Should -Be 'RaftInvalidHost,RaftPS.Cmdlets.NewRaftClusterConfigCommand' }
        $failures.TargetObject | Should -Be @('bad host', 'x:99999', '[db1]:7000', '[::1]7000', 'fd00::g')
        Test-Path config.conf | Should -BeFalse
    }

    It 'refuses two nodes on one address and port (RaftDuplicateEndpoint)' {
        New-RaftClusterConfig db1:7000, DB1:7000, db2 -ErrorVariable failures -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $failures[0].FullyQualifiedErrorId | Should -Be 'RaftDuplicateEndpoint,RaftPS.Cmdlets.NewRaftClusterConfigCommand'
        $failures[0].Exception.Message | Should -Match 'Nodes 0 and 1'
        Test-Path config.conf | Should -BeFalse
    }

    It 'keeps an existing file unless -Force (RaftConfigExists), and writes nothing with -WhatIf' {
        Set-Content config.conf '0 keep 1'
        New-RaftClusterConfig a -ErrorVariable failures -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $failures[0].FullyQualifiedErrorId | Should -Be 'RaftConfigExists,RaftPS.Cmdlets.NewRaftClusterConfigCommand'
        $failures[0].CategoryInfo.Category | Should -Be 'ResourceExists'
        New-RaftClusterConfig a -Force -WhatIf | Should -BeNullOrEmpty
        Get-Content config.conf | Should -Be '0 keep 1'
        New-RaftClusterConfig a -Force | Out-Null
        Get-NodeLines | Should -Be '0 a 50000'
    }
}

