# Module manifest of the built module folder (out/RaftPS/). The RaftPS.psd1 at the
# repository root loads this one, so help (en-US/) and formats resolve beside the dll.
@{
    RootModule           = 'RaftPS.Module.dll'
    ModuleVersion        = '0.1.0'
    GUID                 = '6a0f5d0e-3c1b-4f7e-9a55-2f0c7f1d9b21'
    Author               = 'RaftPS developers'
    Description          = 'A Raft-replicated key-value store, run and driven from PowerShell.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    FormatsToProcess     = @('RaftPS.format.ps1xml')
    CmdletsToExport      = @(
        'Start-RaftCluster',
        'Stop-RaftCluster',
        'Connect-RaftNode',
        'Disconnect-RaftNode',
        'Get-RaftLeader',
        'Set-RaftValue',
        'Get-RaftValue',
        'Remove-RaftValue',
        'Suspend-RaftNode',
        'Get-RaftStatus',
        'Watch-RaftValue',
        'Wait-RaftValue',
        'Lock-RaftKey',
        'Unlock-RaftKey'
    )
    FunctionsToExport    = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
}
