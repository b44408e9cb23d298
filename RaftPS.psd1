# RaftPS from the repository root, after the build: `Import-Module ./RaftPS.psd1`.
# It loads the built module folder out/RaftPS/ (its manifest, src/RaftPS.Module/RaftPS.psd1,
# names the dll and the format file), so Get-Help finds en-US/ beside the dll.
@{
    RootModule           = 'out/RaftPS/RaftPS.psd1'
    ModuleVersion        = '0.1.0'
    GUID                 = '6a0f5d0e-3c1b-4f7e-9a55-2f0c7f1d9b21'
    Author               = 'RaftPS developers'
    Description          = 'A Raft-replicated key-value store, run and driven from PowerShell.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    # Kept equal to the inner manifest's list by tests/RaftPS.Tests/Module.Tests.ps1.
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
        'Get-RaftMember',
        'Add-RaftNode',
        'Remove-RaftNode',
        'Move-RaftLeader',
        'Resume-RaftNode',
        'New-RaftClusterConfig',
        'Watch-RaftValue',
        'Wait-RaftValue',
        'Lock-RaftKey',
        'Unlock-RaftKey',
        'Watch-RaftCluster',
        'New-RaftCertificate',
        'New-RaftUserToken'
    )
    FunctionsToExport    = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
}
