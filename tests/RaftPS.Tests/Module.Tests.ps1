BeforeAll {
    $root = Resolve-Path "$PSScriptRoot/../.."
    Import-Module (Join-Path $root 'RaftPS.psd1') -Force
}

Describe 'The RaftPS module' {
    It 'imports from the repository root and exports its cmdlets' {
        (Get-Module RaftPS).ExportedCmdlets.Keys | Should -Contain 'Connect-RaftNode'
    }

    It 'lists the same cmdlets in both manifests, and only cmdlets the dll has' {
        $outer = (Import-PowerShellDataFile (Join-Path $root 'RaftPS.psd1')).CmdletsToExport
        $inner = (Import-PowerShellDataFile (Join-Path $root 'out/RaftPS/RaftPS.psd1')).CmdletsToExport
        $outer | Should -Be $inner
        $exported = (Get-Module RaftPS).ExportedCmdlets.Keys
        foreach ($name in $inner) { $exported | Should -Contain $name }
    }

    It 'Connect-RaftNode -NotDefault returns a typed connection object' {
        $connection = Connect-RaftNode 127.0.0.1 50001 -NotDefault
        $connection | Should -BeOfType ([RaftPS.RaftConnection])
        $connection.Address | Should -Be '127.0.0.1'
        $connection.Port | Should -Be 50001
    }

    It 'rejects a port outside 1-65535' {
        { Connect-RaftNode 127.0.0.1 70000 -NotDefault } | Should -Throw -ErrorId 'ParameterArgumentValidationError,RaftPS.Cmdlets.ConnectRaftNodeCommand'
    }

    It 'has help with a synopsis and an example' {
        $help = Get-Help Connect-RaftNode -Full
        $help.Synopsis | Should -Match 'Connects'
        @($help.Examples.Example).Count | Should -BeGreaterThan 0
    }
}
