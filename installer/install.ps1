<#
.SYNOPSIS
Installs the training agent for this user on Windows, or upgrades it in place.

.DESCRIPTION
From an unpacked release folder (what the platform's setup commands run, after they
checked the archive's SHA-256):
    $env:API_KEY = '...'; $env:BACKEND_URL = 'https://app.example.com'; .\install.ps1
From a releases folder or URL holding the archives and SHA256SUMS (downloads this
machine's archive, checks it against SHA256SUMS, refuses it when it does not match):
    .\install.ps1 -From https://github.com/OWNER/REPO/releases/latest/download

The build (training-agent.exe and its _internal folder) becomes the folder
$env:TRAINING_AGENT_INSTALL_DIR (default %LOCALAPPDATA%\training-agent\bin): it is copied
to a new folder beside it first, then the old folder is renamed aside and the new one
into place (Windows cannot rename a folder whose agent is running: stop it first), and
that folder joins the user's PATH; then `training-agent install` stores the key (read from API_KEY, or asked
for, never from the command line) and writes the settings. Upgrades keep every setting,
the stored key, the agent id, state, logs and job data; without API_KEY and BACKEND_URL
an upgrade only replaces the executable. Exit code 0 installed, 1 failed.
#>
[CmdletBinding()]
param(
    [string]$From = $env:TRAINING_AGENT_RELEASES,
    [string]$Version = '',
    [ValidateSet('user', 'system', 'none')][string]$Service = 'user',
    [switch]$Yes
)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'  # the progress bar slows Invoke-WebRequest down a lot

function Fail([string]$Message) {
    [Console]::Error.WriteLine("training-agent installer: $Message")
    exit 1
}

$arch = switch ($env:PROCESSOR_ARCHITECTURE) {
    'AMD64' { 'amd64' }
    'ARM64' { 'arm64' }
    default { Fail "no build for this processor ($($env:PROCESSOR_ARCHITECTURE)); builds exist for x64 and ARM64" }
}
$installDir = if ($env:TRAINING_AGENT_INSTALL_DIR) { $env:TRAINING_AGENT_INSTALL_DIR } else { Join-Path $env:LOCALAPPDATA 'training-agent\bin' }

function Get-ReleaseFile([string]$Name, [string]$Destination) {
    if ($From -match '^https?://') {
        try { Invoke-WebRequest -UseBasicParsing -Uri "$From/$Name" -OutFile $Destination }
        catch { Fail "cannot download $From/$Name ($($_.Exception.Message))" }
    } else {
        $path = Join-Path $From $Name
        if (-not (Test-Path -LiteralPath $path -PathType Leaf)) { Fail "$path does not exist; check -From" }
        Copy-Item -LiteralPath $path -Destination $Destination
    }
}

function Get-VerifiedBuild([string]$Work) {
    Get-ReleaseFile 'SHA256SUMS' (Join-Path $Work 'SHA256SUMS')
    $pattern = "^([0-9a-fA-F]{64}) [ *]training-agent-(.+)-windows-$arch\.zip$"
    $listed = @{}
    foreach ($line in Get-Content (Join-Path $Work 'SHA256SUMS')) {
        if ($line -match $pattern) { $listed[$Matches[2]] = $Matches[1].ToLowerInvariant() }
    }
    $chosen = $Version
    if (-not $chosen) {
        # Newest by major.minor.patch (a suffix such as rc1 is ignored for the order).
        $chosen = $listed.Keys | Sort-Object { [version]($_ -replace '^(\d+\.\d+\.\d+).*$', '$1') } | Select-Object -Last 1
    }
    if (-not $chosen -or -not $listed.ContainsKey($chosen)) {
        Fail "$From/SHA256SUMS lists no training-agent $chosen for windows-$arch; check -Version"
    }
    $stem = "training-agent-$chosen-windows-$arch"
    $zip = Join-Path $Work "$stem.zip"
    Get-ReleaseFile "$stem.zip" $zip
    $actual = (Get-FileHash -LiteralPath $zip -Algorithm SHA256).Hash.ToLowerInvariant()
    if ($actual -ne $listed[$chosen]) {
        Fail "the checksum of $stem.zip does not match SHA256SUMS (a damaged or tampered download); nothing was installed: download it again"
    }
    Write-Host "Checked $stem.zip against SHA256SUMS."
    Expand-Archive -LiteralPath $zip -DestinationPath $Work -Force
    $folder = Join-Path $Work $stem
    if (-not (Test-Path -LiteralPath (Join-Path $folder 'training-agent.exe')) -or -not (Test-Path -LiteralPath (Join-Path $folder '_internal'))) {
        Fail "$stem.zip holds no $stem\training-agent.exe with its _internal folder; it is not an agent release"
    }
    return $folder
}

$work = Join-Path ([IO.Path]::GetTempPath()) ("training-agent-install-" + [guid]::NewGuid())
New-Item -ItemType Directory -Path $work | Out-Null
try {
    if ($From) {
        $From = $From.TrimEnd('/', '\')
        $source = Get-VerifiedBuild $work
    } elseif ((Test-Path -LiteralPath (Join-Path $PSScriptRoot 'training-agent.exe')) -and (Test-Path -LiteralPath (Join-Path $PSScriptRoot '_internal'))) {
        $source = $PSScriptRoot
    } else {
        Fail 'no training-agent.exe with its _internal folder next to this script; run it from the unpacked release folder or give -From'
    }

    # The new build is copied in full beside the install folder, then two renames swap
    # the folders: a failed copy (a full disk) leaves the installed agent as it was.
    $installDir = $installDir.TrimEnd('\')
    $staged = "$installDir.new"
    $previous = "$installDir.old"
    foreach ($leftover in @($staged, $previous)) {
        if (Test-Path -LiteralPath $leftover) { Remove-Item -LiteralPath $leftover -Recurse -Force -ErrorAction SilentlyContinue }
    }
    New-Item -ItemType Directory -Force -Path $staged | Out-Null
    try {
        Copy-Item -LiteralPath (Join-Path $source 'training-agent.exe') -Destination $staged
        Copy-Item -LiteralPath (Join-Path $source '_internal') -Destination $staged -Recurse
    } catch {
        Remove-Item -LiteralPath $staged -Recurse -Force -ErrorAction SilentlyContinue
        Fail "cannot copy the build to $staged (is the disk full?); nothing was changed"
    }
    Get-ChildItem -LiteralPath $staged -Recurse -File | Unblock-File  # drop the downloaded-from-the-internet mark
    if (Test-Path -LiteralPath $installDir) {
        try { Move-Item -LiteralPath $installDir -Destination $previous }
        catch {
            Remove-Item -LiteralPath $staged -Recurse -Force -ErrorAction SilentlyContinue
            Fail "the agent in $installDir is running; stop it (training-agent service stop) and run the installer again"
        }
    }
    Move-Item -LiteralPath $staged -Destination $installDir
    if (Test-Path -LiteralPath $previous) {
        # The old build is gone for good once the new one is in place.
        Remove-Item -LiteralPath $previous -Recurse -Force -ErrorAction SilentlyContinue
    }
    $target = Join-Path $installDir 'training-agent.exe'
    Write-Host "Installed $(& $target --version) to $installDir."
    # An enrollment file (the platform's enrolled download) must sit next to the
    # executable that runs `install`, which deletes it once used: move it.
    $enrollFile = Join-Path $installDir 'training-agent.enroll.json'
    $shipped = Join-Path $PSScriptRoot 'training-agent.enroll.json'
    if (-not $From -and (Test-Path -LiteralPath $shipped)) { Move-Item -LiteralPath $shipped -Destination $enrollFile -Force }

    $userPaths = @(([string][Environment]::GetEnvironmentVariable('Path', 'User')) -split ';' | Where-Object { $_ })
    if ($userPaths -notcontains $installDir) {
        [Environment]::SetEnvironmentVariable('Path', (($userPaths + $installDir) -join ';'), 'User')
        Write-Host "Added $installDir to your PATH (new terminals will find training-agent)."
    }

    # An upgrade without a new key or URL keeps the configuration as it is.
    $config = if ($env:TRAINING_AGENT_HOME) { Join-Path $env:TRAINING_AGENT_HOME 'config\config.toml' } else { Join-Path $env:LOCALAPPDATA 'training-agent\config.toml' }
    if ((Test-Path -LiteralPath $config) -and -not $env:API_KEY -and -not $env:BACKEND_URL -and -not (Test-Path -LiteralPath $enrollFile)) {
        Write-Host "Upgraded; kept the settings in $config and the stored key (restart a running agent to use the new version)."
        exit 0
    }

    # The key travels in the environment (API_KEY) or is asked for: never on a command line.
    $arguments = @('install', '--service', $Service)
    if ($Yes) { $arguments += '--yes' }
    & $target @arguments
    exit $LASTEXITCODE
} finally {
    Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
}
