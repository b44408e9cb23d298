<#
.SYNOPSIS
    Writes en-US/RaftPS.Module.dll-Help.xml (MAML) from help/HelpContent.psd1 and the cmdlets' metadata.
.DESCRIPTION
    platyPS is not available here, so this script plays its part: the text comes from
    HelpContent.psd1; the syntax, parameter types, positions and pipeline input come from the
    built cmdlets themselves, so they cannot drift. Run it after `build.ps1 build` whenever a
    cmdlet's parameters or HelpContent.psd1 change, and commit the XML; Module.Tests.ps1 checks
    that the help covers every cmdlet and parameter. Run in a fresh `dotnet pwsh`:
        dotnet pwsh src/RaftPS.Module/help/Build-Help.ps1
#>
[CmdletBinding()]
param(
    [string] $ModuleManifest = (Join-Path $PSScriptRoot '../../../out/RaftPS/RaftPS.psd1'),
    [string] $OutputPath = (Join-Path $PSScriptRoot '../en-US/RaftPS.Module.dll-Help.xml')
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$content = Import-PowerShellDataFile (Join-Path $PSScriptRoot 'HelpContent.psd1')
$module = Import-Module $ModuleManifest -PassThru -Force
$common = [System.Management.Automation.Cmdlet]::CommonParameters

$maml = 'http://schemas.microsoft.com/maml/2004/10'
$command = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
$dev = 'http://schemas.microsoft.com/maml/dev/2004/10'

$settings = [System.Xml.XmlWriterSettings]::new()
$settings.Indent = $true
$settings.Encoding = [System.Text.UTF8Encoding]::new($false)
$writer = [System.Xml.XmlWriter]::Create([IO.Path]::GetFullPath($OutputPath), $settings)

function Write-Paras([string] $Element, [string] $Namespace, [string[]] $Text) {
    $writer.WriteStartElement('maml', $Element, $maml)
    foreach ($paragraph in $Text) {
        foreach ($line in ($paragraph -split "`n")) { $writer.WriteElementString('maml', 'para', $maml, $line) }
    }
    $writer.WriteEndElement()
}

function Get-PipelineInput($attribute) {
    $kinds = @()
    if ($attribute.ValueFromPipeline) { $kinds += 'ByValue' }
    if ($attribute.ValueFromPipelineByPropertyName) { $kinds += 'ByPropertyName' }
    if ($kinds) { "True ($($kinds -join ', '))" } else { 'False' }
}

function Get-TypeName([type] $type) {
    if ($type -eq [System.Management.Automation.SwitchParameter]) { return 'SwitchParameter' }
    if ($type.IsArray) { return "$($type.GetElementType().Name)[]" }
    $type.Name
}

function Write-Parameter($parameter, $attribute, [string] $description, [bool] $globbing) {
    $position = if ($attribute.Position -ge 0) { "$($attribute.Position)" } else { 'named' }
    $isSwitch = $parameter.ParameterType -eq [System.Management.Automation.SwitchParameter]
    $writer.WriteStartElement('command', 'parameter', $command)
    $writer.WriteAttributeString('required', "$($attribute.Mandatory)".ToLowerInvariant())
    $writer.WriteAttributeString('variableLength', "$($parameter.ParameterType.IsArray)".ToLowerInvariant())
    $writer.WriteAttributeString('globbing', "$globbing".ToLowerInvariant())
    $writer.WriteAttributeString('pipelineInput', (Get-PipelineInput $attribute))
    $writer.WriteAttributeString('position', $position)
    $writer.WriteAttributeString('aliases', $(if ($parameter.Aliases.Count) { $parameter.Aliases -join ', ' } else { 'none' }))
    $writer.WriteElementString('maml', 'name', $maml, $parameter.Name)
    Write-Paras 'description' $maml @($description)
    if (-not $isSwitch) {
        $writer.WriteStartElement('command', 'parameterValue', $command)
        $writer.WriteAttributeString('required', 'true')
        $writer.WriteAttributeString('variableLength', "$($parameter.ParameterType.IsArray)".ToLowerInvariant())
        $writer.WriteString((Get-TypeName $parameter.ParameterType))
        $writer.WriteEndElement()
    }
    $writer.WriteStartElement('dev', 'type', $dev)
    $writer.WriteElementString('maml', 'name', $maml, (Get-TypeName $parameter.ParameterType))
    $writer.WriteEndElement()
    $writer.WriteElementString('dev', 'defaultValue', $dev, $(if ($isSwitch) { 'False' } else { 'None' }))
    $writer.WriteEndElement()
}

# Mandatory and positional first, as Get-Help shows them.
function Sort-HelpParameters($parameters) {
    $parameters | Sort-Object @{ Expression = { if ($_.Position -ge 0) { $_.Position } else { 1000 } } }, @{ Expression = { $_.Name -in 'WhatIf', 'Confirm' } }, Name
}

$writer.WriteStartDocument()
$writer.WriteStartElement('helpItems', 'http://msh')
$writer.WriteAttributeString('schema', 'maml')
foreach ($name in ($module.ExportedCmdlets.Keys | Sort-Object)) {
    $text = $content[$name]
    if (-not $text) { throw "HelpContent.psd1 has no entry for $name" }
    $info = Get-Command $name
    $verb, $noun = $name -split '-', 2
    # One syntax line per parameter set, the default set first; the parameters of all sets once.
    $sets = @($info.ParameterSets | Sort-Object @{ Expression = { -not $_.IsDefault } }, Name)
    $parameters = @($sets | ForEach-Object { $_.Parameters } | Where-Object { $_.Name -notin $common } | Group-Object Name | ForEach-Object { $_.Group[0] })
    $parameters = @(Sort-HelpParameters $parameters)

    $writer.WriteStartElement('command', 'command', $command)
    $writer.WriteAttributeString('xmlns', 'maml', $null, $maml)
    $writer.WriteAttributeString('xmlns', 'dev', $null, $dev)

    $writer.WriteStartElement('command', 'details', $command)
    $writer.WriteElementString('command', 'name', $command, $name)
    $writer.WriteElementString('command', 'verb', $command, $verb)
    $writer.WriteElementString('command', 'noun', $command, $noun)
    Write-Paras 'description' $maml @($text.Synopsis)
    $writer.WriteEndElement()

    Write-Paras 'description' $maml @($text.Description)

    $descriptions = @{}
    foreach ($parameter in $parameters) {
        $description = $text.Parameters[$parameter.Name]
        if (-not $description) { $description = $content.CommonParameters[$parameter.Name] }
        if (-not $description) { throw "HelpContent.psd1 describes no parameter $($parameter.Name) of $name" }
        $descriptions[$parameter.Name] = $description
    }
    $globbing = { param($p) $name -eq 'Get-RaftValue' -and $p.Name -eq 'Key' }

    $writer.WriteStartElement('command', 'syntax', $command)
    foreach ($set in $sets) {
        $writer.WriteStartElement('command', 'syntaxItem', $command)
        $writer.WriteElementString('maml', 'name', $maml, $name)
        foreach ($parameter in (Sort-HelpParameters @($set.Parameters | Where-Object { $_.Name -notin $common }))) {
            # Mandatory, position and pipeline input as this set declares them.
            $inSet = [pscustomobject]@{ Mandatory = $parameter.IsMandatory; Position = $parameter.Position
                ValueFromPipeline = $parameter.ValueFromPipeline; ValueFromPipelineByPropertyName = $parameter.ValueFromPipelineByPropertyName }
            Write-Parameter $info.Parameters[$parameter.Name] $inSet $descriptions[$parameter.Name] (& $globbing $parameter)
        }
        $writer.WriteEndElement()
    }
    $writer.WriteEndElement()

    $writer.WriteStartElement('command', 'parameters', $command)
    foreach ($parameter in $parameters) {
        $attribute = $info.Parameters[$parameter.Name].Attributes | Where-Object { $_ -is [System.Management.Automation.ParameterAttribute] } | Select-Object -First 1
        Write-Parameter $info.Parameters[$parameter.Name] $attribute $descriptions[$parameter.Name] (& $globbing $parameter)
    }
    $writer.WriteEndElement()

    $writer.WriteStartElement('command', 'inputTypes', $command)
    $inputs = if ($text.Inputs -and $text.Inputs.Count) { $text.Inputs } else { @{ 'None' = 'You cannot pipe objects to this command.' } }
    foreach ($type in $inputs.Keys) {
        $writer.WriteStartElement('command', 'inputType', $command)
        $writer.WriteStartElement('dev', 'type', $dev); $writer.WriteElementString('maml', 'name', $maml, $type); $writer.WriteEndElement()
        Write-Paras 'description' $maml @($inputs[$type])
        $writer.WriteEndElement()
    }
    $writer.WriteEndElement()

    $writer.WriteStartElement('command', 'returnValues', $command)
    foreach ($type in ($text.Outputs.Keys | Sort-Object)) { # a hashtable keeps no order: sorted, the XML is the same each run
        $writer.WriteStartElement('command', 'returnValue', $command)
        $writer.WriteStartElement('dev', 'type', $dev); $writer.WriteElementString('maml', 'name', $maml, $type); $writer.WriteEndElement()
        Write-Paras 'description' $maml @($text.Outputs[$type])
        $writer.WriteEndElement()
    }
    $writer.WriteEndElement()

    $writer.WriteStartElement('command', 'examples', $command)
    $number = 0
    foreach ($example in $text.Examples) {
        $number++
        $writer.WriteStartElement('command', 'example', $command)
        $writer.WriteElementString('maml', 'title', $maml, "--------- Example $($number): $($example.Title) ---------")
        $writer.WriteElementString('dev', 'code', $dev, $example.Code)
        $writer.WriteStartElement('dev', 'remarks', $dev)
        foreach ($line in ("$($example.Remarks)" -split "`n")) { $writer.WriteElementString('maml', 'para', $maml, $line) }
        $writer.WriteEndElement()
        $writer.WriteEndElement()
    }
    $writer.WriteEndElement()

    $writer.WriteStartElement('command', 'relatedLinks', $command)
    foreach ($link in $text.Links) {
        $writer.WriteStartElement('maml', 'navigationLink', $maml)
        $writer.WriteElementString('maml', 'linkText', $maml, $link)
        $writer.WriteElementString('maml', 'uri', $maml, '')
        $writer.WriteEndElement()
    }
    $writer.WriteEndElement()

    $writer.WriteEndElement()
}
$writer.WriteEndElement()
$writer.WriteEndDocument()
$writer.Close()
Write-Host "Wrote $([IO.Path]::GetFullPath($OutputPath))"
