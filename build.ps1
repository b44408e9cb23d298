#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Builds RaftPS, runs its tests, starts a local cluster, or makes the module package.
.DESCRIPTION
    Run through the local PowerShell tool (`dotnet tool restore` first):
        dotnet pwsh ./build.ps1 build     # build, lay out out/RaftPS (the module folder)
        dotnet pwsh ./build.ps1 test      # build, the code style check, then every xunit and Pester test
        dotnet pwsh ./build.ps1 run       # build, start the cluster of config.conf, open a connected shell
        dotnet pwsh ./build.ps1 package   # build, then out/package/RaftPS.<version>.nupkg with a server per platform
    `test` ends with one plain line "N passed, N failed" (skipped tests are counted in the line
    before it) and exits non-zero on any failure.

    The server is published as a Native AOT executable for this machine
    (out/RaftPS/server/<rid>/RaftServer, RaftServer.exe on Windows): that needs the platform's
    native toolchain (gcc or clang and a linker on Linux, the C++ build tools on Windows, Xcode's
    command line tools on macOS) and adds a minute or two to the build. -Portable lays out the
    framework-dependent server instead (out/RaftPS/server/RaftServer.dll, run by `dotnet`), for a
    machine without that toolchain.

    `package` adds a server for each of win-x64, linux-x64, linux-arm64, osx-x64 and osx-arm64
    (-Runtime chooses): Native AOT for this machine's own, a self-contained, trimmed single-file
    executable for the others (Native AOT cannot cross-compile to another operating system).
    docs/install.md says why, what the package weighs, and how to publish it.
#>
[CmdletBinding()]
param(
    [Parameter(Position = 0)]
    [ValidateSet('build', 'test', 'run', 'package')]
    [string] $Task = 'build',

    # run: a command to run in the connected session instead of an interactive shell.
    [string] $Command,

    # test: only the xunit tests whose names match this filter (dotnet test --filter).
    [string] $XunitFilter,

    # test: only the Pester files whose names match this wildcard.
    [string] $PesterFile = '*',

    # build/test/run: ship the framework-dependent server (RaftServer.dll, run by dotnet) instead of
    # the Native AOT executable; for a machine without a native toolchain.
    [switch] $Portable,

    # package: the platforms to ship a server for ('host' = this machine's). Default: all five.
    [ValidateSet('win-x64', 'linux-x64', 'linux-arm64', 'osx-x64', 'osx-arm64', 'host')]
    [string[]] $Runtime = @('win-x64', 'linux-x64', 'linux-arm64', 'osx-x64', 'osx-arm64'),

    # package: where the package (and the module folder it was made from) go.
    [string] $OutputDirectory = (Join-Path $PSScriptRoot 'out/package'),

    # package: use the module folder of the last build (out/RaftPS) instead of building first.
    [switch] $NoBuild
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$root = $PSScriptRoot
$configuration = 'Release'
$moduleDir = Join-Path $root 'out/RaftPS'
# This machine's runtime identifier (linux-x64, win-x64, osx-arm64, ...): the server built here
# goes to server/<rid>/ in the module folder, where the module looks for it (ServerLocator).
$hostRuntime = [System.Runtime.InteropServices.RuntimeInformation]::RuntimeIdentifier
# The Native AOT publish output: the executable is copied from here into the module folder; its
# debug symbols (RaftServer.dbg, about 30 MB) stay here, out of the module.
$nativeDir = Join-Path $root 'out/server-native'
$serverProject = Join-Path $root 'src/RaftServer/RaftServer.csproj'

function Get-ServerExecutableName([string] $Rid) { if ($Rid -like 'win-*') { 'RaftServer.exe' } else { 'RaftServer' } }

function Invoke-Native([string] $File, [string[]] $Arguments) {
    # Out-Host: a tool's output is for the reader, never a function's return value.
    & $File @Arguments | Out-Host
    if ($LASTEXITCODE -ne 0) { throw "$File $($Arguments -join ' ') failed with exit code $LASTEXITCODE" }
}

function Invoke-Build {
    Invoke-Native dotnet @('build', (Join-Path $root 'RaftPS.sln'), '-c', $configuration, '-nologo', '-v', 'q', '-clp:ErrorsOnly')

    $portableDir = Join-Path $root 'out/server-portable'
    if ($Portable) {
        # The framework-dependent server, without an apphost (a launcher that needs an installed
        # runtime it may not find): server/RaftServer.dll, run as `dotnet RaftServer.dll`.
        Invoke-Native dotnet @('publish', $serverProject, '-c', $configuration, '-p:PublishAot=false', '-p:UseAppHost=false',
            '-o', $portableDir, '-nologo', '-v', 'q', '-clp:ErrorsOnly')
    } else {
        # Native AOT for this machine's runtime identifier, before the module folder is touched: a
        # failed publish leaves the previous module as it was. Trim and AOT warnings are errors
        # (RaftServer.csproj), so a reflection use the compiler cannot follow fails here.
        try {
            Invoke-Native dotnet @('publish', $serverProject, '-c', $configuration, '-r', $hostRuntime, '-o', $nativeDir,
                '-nologo', '-v', 'q', '-clp:ErrorsOnly')
        } catch {
            throw ("The Native AOT publish of the server failed ($($_.Exception.Message)). It needs the platform's " +
                "native toolchain (gcc or clang and a linker on Linux, the C++ build tools of Visual Studio on Windows, " +
                "Xcode's command line tools on macOS). Without one, build the framework-dependent server with: " +
                "dotnet pwsh ./build.ps1 $Task -Portable")
        }
    }

    # The self-contained module folder: manifest, module dlls, format file, help, the server.
    if (Test-Path $moduleDir) { Remove-Item $moduleDir -Recurse -Force }
    New-Item -ItemType Directory -Path $moduleDir | Out-Null
    Copy-Item -Path (Join-Path $root "src/RaftPS.Module/bin/$configuration/net8.0/*") -Destination $moduleDir -Recurse
    $serverDir = Join-Path $moduleDir 'server'
    if ($Portable) {
        Copy-Item -Path $portableDir -Destination $serverDir -Recurse
    } else {
        # Only the executable: its debug symbols (RaftServer.dbg) stay in out/server-native.
        $ridDir = Join-Path $serverDir $hostRuntime
        New-Item -ItemType Directory -Path $ridDir | Out-Null
        Copy-Item -Path (Join-Path $nativeDir (Get-ServerExecutableName $hostRuntime)) -Destination $ridDir
    }
}

# The server the module folder holds: the native executable, or the dll of a -Portable build.
function Get-ShippedServerPath {
    $serverDir = Join-Path $moduleDir 'server'
    foreach ($path in (Join-Path $serverDir $hostRuntime (Get-ServerExecutableName $hostRuntime)), (Join-Path $serverDir 'RaftServer.dll')) {
        if (Test-Path $path) { return $path }
    }
    throw "$serverDir holds neither $hostRuntime/$(Get-ServerExecutableName $hostRuntime) nor RaftServer.dll"
}

# A server for another platform: self-contained (the machine needs no .NET), one file, trimmed.
# Not compressed inside the bundle: the package is a zip that compresses it as well (8.6 MB either
# way for linux-x64), and an uncompressed bundle maps its assemblies from the file, shared by the
# nodes of a machine, instead of inflating them into each node's memory (docs/install.md).
function Publish-SingleFileServer([string] $Rid, [string] $Destination) {
    Write-Host "publishing the self-contained single-file server for $Rid"
    Invoke-Native dotnet @('publish', $serverProject, '-c', $configuration, '-r', $Rid, '--self-contained',
        '-p:PublishAot=false', '-p:PublishSingleFile=true', '-p:PublishTrimmed=true', '-p:EnableCompressionInSingleFile=false',
        '-p:DebugType=none', '-o', $Destination, '-nologo', '-v', 'q', '-clp:ErrorsOnly')
}

function Format-Size([long] $Bytes) { '{0:0.0} MiB' -f ($Bytes / 1MB) }

# build.ps1 package: the module folder with a server per platform, checked by Test-ModuleManifest,
# packed by PSResourceGet (Compress-PSResource) into <OutputDirectory>/RaftPS.<version>.nupkg.
function Invoke-Package {
    if (-not $NoBuild) { Invoke-Build }
    elseif (-not (Test-Path (Join-Path $moduleDir 'RaftPS.psd1'))) { throw "-NoBuild: there is no module folder at $moduleDir; run build.ps1 build first" }
    $runtimes = @($Runtime | ForEach-Object { if ($_ -eq 'host') { $hostRuntime } else { $_ } } | Select-Object -Unique)

    $stage = Join-Path $OutputDirectory 'RaftPS'
    if (Test-Path $stage) { Remove-Item $stage -Recurse -Force }
    New-Item -ItemType Directory -Path $stage | Out-Null
    Get-ChildItem $moduleDir | Where-Object Name -ne 'server' | Copy-Item -Destination $stage -Recurse
    Copy-Item (Join-Path $root 'LICENSE') -Destination $stage

    $sizes = [ordered]@{}
    foreach ($rid in $runtimes) {
        $name = Get-ServerExecutableName $rid
        $built = Join-Path $moduleDir "server/$rid/$name"
        if (-not (Test-Path $built)) {
            # Not this build's own server (or a -Portable build): a single-file one.
            $built = Join-Path $root "out/server-$rid/$name"
            Publish-SingleFileServer $rid (Join-Path $root "out/server-$rid")
        }
        $target = Join-Path $stage "server/$rid"
        New-Item -ItemType Directory -Path $target | Out-Null
        Copy-Item $built -Destination $target
        $sizes[$rid] = (Get-Item $built).Length
    }

    $manifest = Test-ModuleManifest (Join-Path $stage 'RaftPS.psd1')
    $package = Join-Path $OutputDirectory "RaftPS.$($manifest.Version).nupkg"
    if (Test-Path $package) { Remove-Item $package }
    Compress-PSResource -Path $stage -DestinationPath $OutputDirectory
    if (-not (Test-Path $package)) { throw "Compress-PSResource wrote no $package" }

    $moduleBytes = (Get-ChildItem $stage -Recurse -File | Where-Object { $_.FullName -notlike (Join-Path $stage 'server*') } | Measure-Object Length -Sum).Sum
    Write-Host "RaftPS $($manifest.Version): $package"
    foreach ($rid in $sizes.Keys) {
        $kind = if ($rid -eq $hostRuntime -and -not $Portable) { 'Native AOT' } else { 'self-contained single file' }
        Write-Host ("  server {0,-12} {1,9}  ({2})" -f $rid, (Format-Size $sizes[$rid]), $kind)
    }
    Write-Host ("  module files      {0,9}" -f (Format-Size $moduleBytes))
    Write-Host ("  package (.nupkg)  {0,9}; installed {1}" -f (Format-Size (Get-Item $package).Length),
        (Format-Size (Get-ChildItem $stage -Recurse -File | Measure-Object Length -Sum).Sum))
}

function Get-PesterModulePath {
    $project = Join-Path $root 'tests/RaftPS.Tests/PesterDownload.csproj'
    Invoke-Native dotnet @('restore', $project, '-nologo', '-v', 'q')
    $version = ([xml](Get-Content $project)).Project.PropertyGroup.PesterVersion
    $packages = (& dotnet nuget locals global-packages --list) -replace '^global-packages:\s*', ''
    $path = Join-Path $packages.Trim() "pester/$version/tools/Pester.psd1"
    if (-not (Test-Path $path)) { throw "Pester $version was restored but $path is missing" }
    $path
}

# The code style of .editorconfig: `dotnet format` changes nothing, or the check fails (and says
# how to fix it). Counted as one check in the totals.
function Invoke-FormatCheck {
    Write-Host "dotnet format --verify-no-changes (the style of .editorconfig)"
    & dotnet format (Join-Path $root 'RaftPS.sln') --verify-no-changes --no-restore 2>&1 | Out-Host
    if ($LASTEXITCODE -ne 0) {
        Write-Host "dotnet format found files that do not follow .editorconfig; run: dotnet format RaftPS.sln"
        return [pscustomobject]@{ Passed = 0; Failed = 1 }
    }
    [pscustomobject]@{ Passed = 1; Failed = 0 }
}

# Tools some tests need from the system: the network fault tests (tests/RaftServer.Tests/NetworkFaults)
# need `ip` (iproute2) and `nft` (nftables) and root; the live view's terminal test
# (tests/RaftPS.Tests/WatchTerminal.Tests.ps1) needs `tmux`. As root on Linux, install what is
# missing with apt-get and say so; anywhere else those tests report themselves skipped, with the reason.
function Install-TestTools([string] $Purpose, [hashtable[]] $Tools) {
    if (-not $IsLinux) { return }
    $missing = @($Tools |
        Where-Object { -not (Get-Command $_.Tool -ErrorAction Ignore) -and -not (Test-Path "/usr/sbin/$($_.Tool)") } |
        ForEach-Object { $_.Package })
    if ($missing.Count -eq 0) { return }
    if ((& id -u) -ne '0' -or -not (Get-Command apt-get -ErrorAction Ignore)) {
        Write-Host "$($Purpose): $($missing -join ', ') missing and not root with apt-get: those tests will be skipped"
        return
    }
    Write-Host "$($Purpose): installing $($missing -join ', ') (apt-get)"
    $env:DEBIAN_FRONTEND = 'noninteractive'
    & apt-get update -qq | Out-Host
    & apt-get install -y -qq --no-install-recommends @missing | Out-Host
    if ($LASTEXITCODE -ne 0) { Write-Host "apt-get install $($missing -join ' ') failed (exit code $LASTEXITCODE): the $Purpose will be skipped" }
}

function Install-SystemTestTools {
    Install-TestTools 'network fault tests' @(@{ Tool = 'ip'; Package = 'iproute2' }, @{ Tool = 'nft'; Package = 'nftables' })
    Install-TestTools 'terminal tests' @(@{ Tool = 'tmux'; Package = 'tmux' })
}

function Invoke-XunitTests {
    $arguments = @('test', (Join-Path $root 'tests/RaftServer.Tests/RaftServer.Tests.csproj'), '-c', $configuration,
        '--no-build', '-nologo')
    if ($XunitFilter) { $arguments += @('--filter', $XunitFilter) }
    # The real-process tests start the server the module ships (ServerProcess reads RAFTPS_SERVER).
    $env:RAFTPS_SERVER = Get-ShippedServerPath
    Write-Host "xunit: the real-process tests run $env:RAFTPS_SERVER (RAFTPS_SERVER)"
    $passed = 0; $failed = 0; $skipped = 0; $summarySeen = $false
    $failedNames = [Collections.Generic.List[string]]::new()
    # The first lines of each failure's message, repeated at the end with its name (CI keeps the tail).
    $messageLines = 0
    & dotnet @arguments 2>&1 | ForEach-Object {
        $line = "$_"
        Write-Host $line
        if ($line -match '^\s*Failed (\S.*) \[[^\]]+\]\s*$') { $failedNames.Add($Matches[1]); $messageLines = 0; return }
        if ($failedNames.Count -gt 0 -and $line -match '^\s*(Stack Trace:|Failed!|Passed!)') { $messageLines = -1 }
        # What the test wrote (a randomised test's seed, to replay it) follows the stack trace.
        if ($failedNames.Count -gt 0 -and $line -match '^\s*Standard Output Messages:\s*$') { $messageLines = 4; return }
        if ($failedNames.Count -gt 0 -and $messageLines -ge 0 -and $messageLines -lt 12 -and $line -notmatch '^\s*Error Message:\s*$') {
            $text = $line.Trim()
            if ($text) { $failedNames[$failedNames.Count - 1] += "`n    " + ($text.Length -gt 240 ? $text.Substring(0, 240) + '...' : $text); $messageLines++ }
        }
        if ($line -match 'Failed:\s*(\d+),\s*Passed:\s*(\d+),\s*Skipped:\s*(\d+),') {
            $failed += [int]$Matches[1]; $passed += [int]$Matches[2]; $skipped += [int]$Matches[3]; $summarySeen = $true
        }
    }
    $exit = $LASTEXITCODE
    # A crashed test host or a build problem prints no summary: count it as a failure.
    if (-not $summarySeen -or ($exit -ne 0 -and $failed -eq 0)) { $failed++ ; Write-Host "xunit run failed (exit code $exit)" }
    [pscustomobject]@{ Passed = $passed; Failed = $failed; Skipped = $skipped; FailedNames = $failedNames }
}

function Invoke-PesterTests {
    $pester = Get-PesterModulePath
    $runner = Join-Path $root 'tests/RaftPS.Tests/Invoke-PesterFile.ps1'
    $passed = 0; $failed = 0
    $failedNames = [Collections.Generic.List[string]]::new()
    $files = @(Get-ChildItem (Join-Path $root 'tests/RaftPS.Tests') -Filter "$PesterFile.Tests.ps1")
    if ($files.Count -eq 0) {
        # A mistyped -PesterFile must not pass by running nothing.
        Write-Host "no Pester file matches '$PesterFile.Tests.ps1' in tests/RaftPS.Tests (-PesterFile takes a name stem such as Cluster)"
        return [pscustomobject]@{ Passed = 0; Failed = 1 }
    }
    foreach ($file in $files) {
        # A fresh pwsh per file: a loaded module dll cannot be reloaded in one process.
        $resultPath = Join-Path ([IO.Path]::GetTempPath()) "raftps-pester-$([guid]::NewGuid()).json"
        & dotnet pwsh -NoProfile -NonInteractive -File $runner -PesterPath $pester -TestPath $file.FullName -ResultPath $resultPath | Out-Host
        if (Test-Path $resultPath) {
            $result = Get-Content $resultPath -Raw | ConvertFrom-Json
            Remove-Item $resultPath
            $passed += $result.Passed
            $failed += $result.Failed
            foreach ($name in @($result.FailedNames)) { if ($name) { $failedNames.Add("$name") } }
        } else {
            Write-Host "Pester run of $($file.Name) wrote no result (exit code $LASTEXITCODE)"
            $failed++
            $failedNames.Add("$($file.Name) (no result)")
        }
    }
    [pscustomobject]@{ Passed = $passed; Failed = $failed; FailedNames = $failedNames }
}

switch ($Task) {
    'build' { Invoke-Build }
    'package' { Invoke-Package }
    'test' {
        Invoke-Build
        Install-SystemTestTools
        $format = Invoke-FormatCheck
        $xunit = Invoke-XunitTests
        $pester = Invoke-PesterTests
        # Named again here because CI keeps only the tail of a long log.
        foreach ($name in $xunit.FailedNames) { Write-Host "xunit failed: $name" }
        foreach ($name in $pester.FailedNames) { Write-Host "Pester failed: $name" }
        Write-Host "format: $($format.Passed) passed, $($format.Failed) failed; xunit: $($xunit.Passed) passed, $($xunit.Failed) failed, $($xunit.Skipped) skipped; Pester: $($pester.Passed) passed, $($pester.Failed) failed"
        $passedTotal = $format.Passed + $xunit.Passed + $pester.Passed
        $failedTotal = $format.Failed + $xunit.Failed + $pester.Failed
        # The contract with CI: the last line is exactly "N passed, N failed" (skips are in the line above).
        Write-Host "$passedTotal passed, $failedTotal failed"
        exit ([int]($failedTotal -gt 0 -or $passedTotal -eq 0))
    }
    'run' {
        Invoke-Build
        # Start the cluster of config.conf from this process (data under ./data), open a connected
        # `dotnet pwsh` (or run -Command in it), and stop the cluster when that shell ends.
        $manifest = Join-Path $moduleDir 'RaftPS.psd1'
        Import-Module $manifest
        $config = Join-Path $root 'config.conf'
        $exitCode = 1
        try {
            $nodes = @(Start-RaftCluster -ConfigPath $config -DataDirectory (Join-Path $root 'data'))
            $first = $nodes[0]
            $setup = "Import-Module '$manifest'; Connect-RaftNode '$($first.Address)' $($first.Port) | Out-Null"
            $shell = [System.Diagnostics.ProcessStartInfo]::new('dotnet')
            $shell.UseShellExecute = $false
            $shell.WorkingDirectory = (Get-Location).ProviderPath
            if ($Command) {
                foreach ($argument in 'pwsh', '-NoProfile', '-NonInteractive', '-Command', "$setup; $Command") { $shell.ArgumentList.Add($argument) }
            } else {
                $banner = "Write-Host 'RaftPS: cluster of config.conf running, connected to node $($first.Id) ($($first.Address):$($first.Port)). Try Get-RaftLeader, Set-RaftValue key1 100, Get-RaftValue key1, Get-Help Set-RaftValue -Examples. The cluster stops when you exit.'"
                foreach ($argument in 'pwsh', '-NoExit', '-NoProfile', '-Command', "$setup; $banner") { $shell.ArgumentList.Add($argument) }
            }
            # A plain process, waited for in one call: Ctrl+C in the shell cannot make this script
            # stop waiting (and stop the cluster) while the shell still runs.
            $process = [System.Diagnostics.Process]::Start($shell)
            $process.WaitForExit()
            $exitCode = $process.ExitCode
        } finally {
            Stop-RaftCluster -ConfigPath $config
        }
        exit $exitCode
    }
}
