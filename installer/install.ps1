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

The build (training-agent.exe and its _internal folder) is copied into its own folder
under $env:TRAINING_AGENT_INSTALL_DIR\versions (default %LOCALAPPDATA%\training-agent\bin),
the file 'current' there is replaced to name it, and the launcher training-agent.cmd
beside it runs the build 'current' names: the layout the self-update switches in
(training_agent/update/layout.py). A running agent keeps its folder; an install from
before this layout must be stopped first. The install folder joins the user's PATH; then `training-agent install` stores the key (read from API_KEY, or asked
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

# Writes $Text to $Path through a new file renamed over it: a reader sees the old
# content or the new, never half (the launcher reads 'current' at each start).
function Set-FileByRename([string]$Path, [string]$Text) {
    $new = Join-Path (Split-Path -Parent $Path) ('.' + (Split-Path -Leaf $Path) + '.new')
    [IO.File]::WriteAllText($new, $Text, [Text.Encoding]::ASCII)
    if (Test-Path -LiteralPath $Path) { [IO.File]::Replace($new, $Path, [NullString]::Value) } else { [IO.File]::Move($new, $Path) }
}

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

    # The layout the self-update uses (training_agent/update/layout.py): the build goes
    # into its own folder under versions\ (hidden while it is copied: a failed copy, a
    # full disk, changes nothing), the file 'current' is replaced by a rename to name it,
    # and the launcher training-agent.cmd (on PATH; the scheduled task runs it) runs the
    # build 'current' names. A running agent keeps its own folder; the previous build is
    # kept for a rollback, older ones are removed.
    $installDir = $installDir.TrimEnd('\')
    $versions = Join-Path $installDir 'versions'
    try { $shown = [string](& (Join-Path $source 'training-agent.exe') --version) } catch { $shown = $_.Exception.Message }
    if ($LASTEXITCODE -ne 0 -or $shown -notmatch '^training-agent (\S+)') { Fail "the new build does not start on this machine ($shown); nothing was changed" }
    $name = "$($Matches[1])-" + [guid]::NewGuid().ToString('N').Substring(0, 6)
    $staged = Join-Path $versions ".$name"
    New-Item -ItemType Directory -Force -Path $staged | Out-Null
    try {
        Copy-Item -LiteralPath (Join-Path $source 'training-agent.exe') -Destination $staged
        Copy-Item -LiteralPath (Join-Path $source '_internal') -Destination $staged -Recurse
    } catch {
        Remove-Item -LiteralPath $staged -Recurse -Force -ErrorAction SilentlyContinue
        Fail "cannot copy the build to $staged (is the disk full?); nothing was changed"
    }
    Get-ChildItem -LiteralPath $staged -Recurse -File | Unblock-File  # drop the downloaded-from-the-internet mark
    Rename-Item -LiteralPath $staged -NewName $name
    $folder = Join-Path $versions $name
    # An install from before this layout has its build in the folder itself, where PATH
    # would find training-agent.exe before the launcher: it goes (it must not be running).
    $migrated = Test-Path -LiteralPath (Join-Path $installDir 'training-agent.exe')
    foreach ($old in @('training-agent.exe', '_internal')) {
        $path = Join-Path $installDir $old
        if (Test-Path -LiteralPath $path) {
            try { Remove-Item -LiteralPath $path -Recurse -Force }
            catch {
                Remove-Item -LiteralPath $folder -Recurse -Force -ErrorAction SilentlyContinue
                Fail "the agent in $installDir is running; stop it (training-agent service stop) and run the installer again"
            }
        }
    }
    $launcherLines = @(
        '@echo off',
        'rem training-agent: runs the build named by the file ''current'' (update/layout.py);',
        'rem exit code 75 means the agent switched builds: start the one named now.',
        'setlocal',
        ':run',
        'set /p build=<"%~dp0current"',
        '"%~dp0versions\%build%\training-agent.exe" %*',
        'if errorlevel 75 if not errorlevel 76 goto run',
        'exit /b %errorlevel%'
    )
    $target = Join-Path $installDir 'training-agent.cmd'
    $launcherText = ($launcherLines -join "`r`n") + "`r`n"
    # A launcher that is running must not change under cmd.exe: written only when it differs.
    if (-not (Test-Path -LiteralPath $target) -or [IO.File]::ReadAllText($target) -ne $launcherText) { Set-FileByRename $target $launcherText }
    $pointer = Join-Path $installDir 'current'
    $previousName = if (Test-Path -LiteralPath $pointer) { ([IO.File]::ReadAllText($pointer)).Trim() } else { '' }
    Set-FileByRename $pointer "$name`r`n"
    Get-ChildItem -LiteralPath $versions -Directory | Where-Object { $_.Name -notin @($name, $previousName) -and -not $_.Name.StartsWith('.') } |
        ForEach-Object { Remove-Item -LiteralPath $_.FullName -Recurse -Force -ErrorAction SilentlyContinue }  # a running one stays
    Write-Host "Installed $(& $target --version) to $installDir."
    # An enrollment file (the platform's enrolled download) must sit next to the
    # executable that runs `install`, which deletes it once used: move it.
    $enrollFile = Join-Path $folder 'training-agent.enroll.json'
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
        if ($migrated) {
            # The scheduled task of that older install ran the executable that is gone
            # now: registered again, it runs the launcher.
            # cmd.exe swallows schtasks' complaint about a missing task (stderr would stop
            # this script under ErrorActionPreference Stop).
            & cmd.exe /d /c 'schtasks /Query /TN training-agent >nul 2>&1'
            if ($LASTEXITCODE -eq 0) { & $target service install; if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE } }
        }
        Write-Host "Upgraded; kept the settings in $config and the stored key (a running agent of this layout switches at its next start)."
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
