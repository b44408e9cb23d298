# Module manifest of the built module folder (out/RaftPS/) and of the package (build.ps1 package).
# The RaftPS.psd1 at the repository root loads this one, so help (en-US/) and formats resolve
# beside the dll. ModuleVersion is the package's version.
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
    # What PSResourceGet and the PowerShell Gallery show. build.ps1 package checks the manifest
    # (Test-ModuleManifest) and packs the module folder with a server for each platform.
    PrivateData          = @{
        PSData = @{
            Tags         = @('Raft', 'Consensus', 'KeyValue', 'Distributed', 'Replication', 'gRPC', 'Cluster',
                'PSEdition_Core', 'Windows', 'Linux', 'MacOS')
            LicenseUri   = 'https://github.com/raftps/RaftPS/blob/main/LICENSE'
            ProjectUri   = 'https://github.com/raftps/RaftPS'
            ReleaseNotes = 'First packaged release: servers for win-x64, linux-x64, linux-arm64, osx-x64 and osx-arm64 chosen at run time; Start-RaftCluster -Count for a local cluster with no config file; New-RaftClusterConfig; nodes tied to the session on Windows (Job Object); systemd and Windows service hosting of the server (docs/operations.md).'
        }
    }
}
