<#
.SYNOPSIS
    Runs one Pester file in this (fresh) process and writes its counts as JSON.
.DESCRIPTION
    build.ps1 starts one `dotnet pwsh` per test file, because a binary module, once loaded,
    cannot be reloaded in the same process. A file that fails at discovery or in BeforeAll has
    FailedCount 0 but a failed container: it is counted as a failure here.
#>
param(
    [Parameter(Mandatory)] [string] $PesterPath,
    [Parameter(Mandatory)] [string] $TestPath,
    [Parameter(Mandatory)] [string] $ResultPath
)
$ErrorActionPreference = 'Stop'
Import-Module $PesterPath

$configuration = New-PesterConfiguration
$configuration.Run.Path = $TestPath
$configuration.Run.PassThru = $true
$configuration.Output.Verbosity = 'Detailed'
$result = Invoke-Pester -Configuration $configuration

$failed = $result.FailedCount + $result.FailedBlocksCount + $result.FailedContainersCount
if ($result.Result -ne 'Passed' -and $failed -eq 0) { $failed = 1 }
$failedNames = @($result.Failed | ForEach-Object { $_.ExpandedPath })
if ($failed -gt 0 -and $failedNames.Count -eq 0) { $failedNames = @("$(Split-Path -Leaf $TestPath) (discovery or setup)") }
@{ Passed = $result.PassedCount; Failed = $failed; FailedNames = $failedNames } | ConvertTo-Json | Set-Content -Path $ResultPath
