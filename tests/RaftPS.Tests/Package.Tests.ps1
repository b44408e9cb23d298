# The package as a user gets it: `build.ps1 package` (this machine's server only: the other four
# are the same project published for another platform, docs/install.md), published to a local
# file repository and installed with PSResourceGet into a fresh module path, then used from a
# fresh pwsh in an empty folder with no repository around it. The "user" is a temporary HOME:
# PSResourceGet keeps its repositories and installs modules under it (~/.local/share), PowerShell
# reads its user module path from it, and RaftPS keeps its local clusters there.
BeforeAll {
    $script:RepoRoot = (Resolve-Path "$PSScriptRoot/../..").Path
    $script:Work = Join-Path ([IO.Path]::GetTempPath()) "raftps-package-$([guid]::NewGuid().ToString('n').Substring(0, 8))"
    $script:UserHome = Join-Path $Work 'home'
    $script:Repository = Join-Path $Work 'repository'
    $script:Empty = Join-Path $Work 'empty-folder'
    $script:PackageOut = Join-Path $Work 'package'
    New-Item -ItemType Directory -Path $UserHome, $Repository, $Empty | Out-Null
    $script:Version = (Import-PowerShellDataFile (Join-Path $RepoRoot 'src/RaftPS.Module/RaftPS.psd1')).ModuleVersion
    $script:Rid = [System.Runtime.InteropServices.RuntimeInformation]::RuntimeIdentifier
    $script:Installed = Join-Path $UserHome ".local/share/powershell/Modules/RaftPS/$Version"
    # This PowerShell, started afresh: `dotnet pwsh` would need the repository's tool manifest.
    $script:Pwsh = Join-Path $PSHOME 'pwsh.dll'

    # A fresh pwsh as the user, by default in an empty folder: no profile, no module path or XDG
    # folders inherited from this process.
    function script:Invoke-UserPwsh([string] $Script, [string] $WorkingDirectory = $Empty, [int] $TimeoutSec = 180) {
        $start = [Diagnostics.ProcessStartInfo]::new('dotnet')
        $start.WorkingDirectory = $WorkingDirectory
        foreach ($argument in $Pwsh, '-NoProfile', '-NonInteractive', '-Command', $Script) { $start.ArgumentList.Add($argument) }
        $start.Environment['HOME'] = $UserHome
        $start.Environment['NO_COLOR'] = '1' # plain text output, no ANSI escapes
        foreach ($name in 'PSModulePath', 'XDG_DATA_HOME', 'XDG_CONFIG_HOME', 'XDG_CACHE_HOME', 'RAFTPS_SERVER_ARGS') { $start.Environment.Remove($name) | Out-Null }
        $start.RedirectStandardOutput = $true
        $start.RedirectStandardError = $true
        $process = [Diagnostics.Process]::Start($start)
        $stdout = $process.StandardOutput.ReadToEndAsync()
        $stderr = $process.StandardError.ReadToEndAsync()
        if (-not $process.WaitForExit($TimeoutSec * 1000)) {
            $process.Kill($true)
            throw "pwsh did not finish within $TimeoutSec s: $Script"
        }
        $process.WaitForExit()
        [pscustomobject]@{ ExitCode = $process.ExitCode; Output = $stdout.Result; Errors = $stderr.Result }
    }

    # Servers started from the installed module that are still running.
    function script:Get-InstalledServerProcess {
        Get-Process -ErrorAction SilentlyContinue | Where-Object { $_.Path -and $_.Path.StartsWith($Work) }
    }
}

AfterAll {
    Get-InstalledServerProcess | ForEach-Object { $_.Kill($true) }
    Remove-Item $Work -Recurse -Force -ErrorAction SilentlyContinue
}

Describe 'The RaftPS package' -Skip:$IsWindows {
    It 'build.ps1 package makes RaftPS.<version>.nupkg from a module folder that passes Test-ModuleManifest' {
        $result = Invoke-UserPwsh "& '$RepoRoot/build.ps1' package -NoBuild -Runtime host -OutputDirectory '$PackageOut'" -WorkingDirectory $Work
        $result.Output | Out-Host
        $result.Errors | Should -BeNullOrEmpty
        $result.ExitCode | Should -Be 0
        Test-Path (Join-Path $PackageOut "RaftPS.$Version.nupkg") | Should -BeTrue
        $manifest = Test-ModuleManifest (Join-Path $PackageOut 'RaftPS/RaftPS.psd1')
        "$($manifest.Version)" | Should -Be $Version
        $manifest.LicenseUri | Should -Not -BeNullOrEmpty
        $manifest.ProjectUri | Should -Not -BeNullOrEmpty
        $manifest.ReleaseNotes | Should -Not -BeNullOrEmpty
        $manifest.Tags | Should -Contain 'Windows'
        $manifest.Tags | Should -Contain 'Linux'
        $manifest.Tags | Should -Contain 'MacOS'
        Test-Path (Join-Path $PackageOut "RaftPS/server/$Rid/RaftServer") | Should -BeTrue
        Test-Path (Join-Path $PackageOut 'RaftPS/en-US/RaftPS.Module.dll-Help.xml') | Should -BeTrue
        Test-Path (Join-Path $PackageOut 'RaftPS/LICENSE') | Should -BeTrue
    }

    It 'publishes to a local file repository and installs into a fresh module path with PSResourceGet' {
        $nupkg = Join-Path $PackageOut "RaftPS.$Version.nupkg"
        $result = Invoke-UserPwsh @"
`$ErrorActionPreference = 'Stop'
Register-PSResourceRepository -Name RaftPSLocal -Uri '$Repository' -Trusted
Publish-PSResource -NupkgPath '$nupkg' -Repository RaftPSLocal
Install-PSResource -Name RaftPS -Repository RaftPSLocal -Scope CurrentUser -TrustRepository -Quiet
"@ -WorkingDirectory $Work
        $result.Errors | Should -BeNullOrEmpty
        $result.ExitCode | Should -Be 0
        Test-Path (Join-Path $Repository "RaftPS.$Version.nupkg") | Should -BeTrue
        Test-Path (Join-Path $Installed 'RaftPS.psd1') | Should -BeTrue
        "$((Test-ModuleManifest (Join-Path $Installed 'RaftPS.psd1')).Version)" | Should -Be $Version
    }

    It 'works from a fresh pwsh in an empty folder: Import-Module RaftPS; Start-RaftCluster -Count 3; Set-RaftValue a 1; Get-RaftValue a; Stop-RaftCluster' {
        $result = Invoke-UserPwsh 'Import-Module RaftPS; Start-RaftCluster -Count 3; Set-RaftValue a 1; Get-RaftValue a; Stop-RaftCluster'
        $result.Errors | Should -BeNullOrEmpty
        $result.ExitCode | Should -Be 0
        # The three nodes as a table, then the value (as a list: another type in the same output).
        $result.Output | Should -Match '(?m)^\s*2\s+127\.0\.0\.1\s+\d+'
        $result.Output | Should -Match '(?m)^Key\s*:\s*a\s*$'
        $result.Output | Should -Match '(?m)^Value\s*:\s*1\s*$'
        Get-ChildItem $Empty | Should -BeNullOrEmpty
        Get-InstalledServerProcess | Should -BeNullOrEmpty
    }

    It 'ran the installed module and its server, kept the data in the user folder, and finds the value again' {
        $result = Invoke-UserPwsh @'
$ErrorActionPreference = 'Stop'
Import-Module RaftPS
$nodes = Start-RaftCluster -Count 3
$servers = @($nodes | ForEach-Object { (Get-Process -Id $_.ProcessId).Path } | Sort-Object -Unique)
$value = Get-RaftValue a
Stop-RaftCluster
[pscustomobject]@{ ModuleBase = (Get-Module RaftPS).ModuleBase; Servers = $servers; Value = $value.Value; DataDirectory = $nodes[0].DataDirectory } | ConvertTo-Json -Compress
'@
        $result.Errors | Should -BeNullOrEmpty
        $result.ExitCode | Should -Be 0
        $report = $result.Output | ConvertFrom-Json
        $report.ModuleBase | Should -Be $Installed
        $report.Servers | Should -Be (Join-Path $Installed "server/$Rid/RaftServer")
        $report.Value | Should -Be '1'
        $report.DataDirectory | Should -Be (Join-Path $UserHome '.local/share/RaftPS/clusters/local/node-0')
        Get-InstalledServerProcess | Should -BeNullOrEmpty
    }
}
