#!/bin/sh
# Installs the training agent for this user on Linux or macOS, or upgrades it in place.
#
#   From an unpacked release folder (what the platform's setup commands run, after they
#   checked the archive's SHA-256):
#       API_KEY=... BACKEND_URL=https://app.example.com ./install.sh
#   From a releases folder or URL holding the archives and SHA256SUMS (downloads this
#   machine's archive, checks it against SHA256SUMS, refuses it when it does not match):
#       API_KEY=... BACKEND_URL=... sh install.sh --from https://github.com/OWNER/REPO/releases/latest/download
#
# Options: --from DIR|URL (env TRAINING_AGENT_RELEASES), --version V (default: the newest
# in SHA256SUMS), --service user|system|none (default user, env TRAINING_AGENT_SERVICE),
# --yes (never ask).
# The build (the training-agent executable and its _internal folder) goes to a new folder
# versions/<version>-<id> of TRAINING_AGENT_INSTALL_DIR (default
# ~/.local/share/training-agent/bin, on macOS ~/Library/Application Support/training-agent/bin);
# then the link TRAINING_AGENT_INSTALL_DIR/training-agent is replaced by one to it in a
# single rename (a running agent keeps its own folder; the previous one is kept for a
# rollback, older ones are removed: training_agent/update/layout.py). Then
# `training-agent install` stores the key (read from API_KEY, or asked for, never from
# the command line), writes the settings and the launcher ~/.local/bin/training-agent.
# An enrollment file (training-agent.enroll.json, from the platform's enrolled download)
# beside this script moves next to the installed executable, where `install` reads it.
# Upgrades keep every setting, the stored key, the agent id, state, logs and job data;
# without API_KEY and BACKEND_URL an upgrade only replaces the executable.
# Exit status: 0 installed, 1 failed (one sentence says why), 2 bad usage.
set -eu

say() { printf '%s\n' "$*" >&2; }
fail() { say "training-agent installer: $*"; exit 1; }
usage() { say "usage: install.sh [--from DIR|URL] [--version V] [--service user|system|none] [--yes]"; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
from=${TRAINING_AGENT_RELEASES:-}
version=
service=${TRAINING_AGENT_SERVICE:-user}
yes=
while [ $# -gt 0 ]; do
    case $1 in
        --from) [ $# -ge 2 ] || usage; from=$2; shift 2 ;;
        --version) [ $# -ge 2 ] || usage; version=$2; shift 2 ;;
        --service) [ $# -ge 2 ] || usage; service=$2; shift 2 ;;
        --yes) yes=--yes; shift ;;
        -h|--help) sed -n '2,/^[^#]/{/^#/p;}' "$0" >&2; exit 0 ;;
        *) say "training-agent installer: unknown option $1"; usage ;;
    esac
done
case $service in user|system|none) ;; *) usage ;; esac

case $(uname -s) in
    Linux) os=linux ;;
    Darwin) os=darwin ;;
    *) fail "this installer is for Linux and macOS; on Windows run install.ps1" ;;
esac
case $(uname -m) in
    x86_64|amd64) arch=amd64 ;;
    aarch64|arm64) arch=arm64 ;;
    *) fail "no build for this processor ($(uname -m)); builds exist for x86_64 and arm64" ;;
esac

if [ -n "${TRAINING_AGENT_INSTALL_DIR:-}" ]; then
    install_dir=$TRAINING_AGENT_INSTALL_DIR
elif [ "$os" = darwin ]; then
    install_dir="$HOME/Library/Application Support/training-agent/bin"
else
    install_dir="${XDG_DATA_HOME:-$HOME/.local/share}/training-agent/bin"
fi

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | cut -d' ' -f1
    elif command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 "$1" | sed 's/.*= *//'
    else fail "no sha256sum, shasum or openssl to check the download with; install one"
    fi
}

# fetch NAME DEST: copy NAME from the releases folder or download it from the releases URL.
fetch() {
    case $from in
        http://*|https://*)
            if command -v curl >/dev/null 2>&1; then
                curl -fsSL --retry 3 -o "$2" "$from/$1" || fail "cannot download $from/$1"
            elif command -v wget >/dev/null 2>&1; then
                wget -q -O "$2" "$from/$1" || fail "cannot download $from/$1"
            else
                fail "neither curl nor wget is installed; install one and try again"
            fi ;;
        *)
            [ -f "$from/$1" ] || fail "$from/$1 does not exist; check --from"
            cp "$from/$1" "$2" ;;
    esac
}

# newest_version SUMS: the highest version with an archive for this os and arch.
newest_version() {
    sed -n "s/^[0-9a-fA-F]\{64\} [ *]training-agent-\(.*\)-$os-$arch\.tar\.gz\$/\1/p" "$1" |
        awk -F'[.+-]' '{ printf "%09d%09d%09d %s\n", $1, $2, $3, $0 }' | sort | tail -n 1 | cut -d' ' -f2
}

# download_and_check: the build folder from a verified archive, unpacked under $work.
download_and_check() {
    fetch SHA256SUMS "$work/SHA256SUMS"
    [ -n "$version" ] || version=$(newest_version "$work/SHA256SUMS")
    [ -n "$version" ] || fail "$from/SHA256SUMS lists no archive for $os-$arch"
    stem="training-agent-$version-$os-$arch"
    expected=$(sed -n "s/^\([0-9a-fA-F]\{64\}\) [ *]$stem\.tar\.gz\$/\1/p" "$work/SHA256SUMS" | head -n 1)
    [ -n "$expected" ] || fail "$from/SHA256SUMS does not list $stem.tar.gz; check --version"
    fetch "$stem.tar.gz" "$work/$stem.tar.gz"
    actual=$(sha256_of "$work/$stem.tar.gz")
    expected=$(printf '%s' "$expected" | tr 'A-F' 'a-f')
    if [ "$actual" != "$expected" ]; then
        fail "the checksum of $stem.tar.gz does not match SHA256SUMS (a damaged or tampered download); nothing was installed: download it again"
    fi
    say "Checked $stem.tar.gz against SHA256SUMS."
    tar -xzf "$work/$stem.tar.gz" -C "$work" || fail "cannot unpack $stem.tar.gz; download it again"
    source_dir="$work/$stem"
    [ -f "$source_dir/training-agent" ] && [ -d "$source_dir/_internal" ] ||
        fail "$stem.tar.gz holds no $stem/training-agent with its _internal folder; it is not an agent release"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/training-agent-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
if [ -n "$from" ]; then
    from=${from%/}
    download_and_check
elif [ -f "$here/training-agent" ] && [ -d "$here/_internal" ]; then
    source_dir=$here
else
    fail "no training-agent with its _internal folder next to this script; run it from the unpacked release folder or give --from"
fi

# The new build goes to its own folder first (hidden while it is copied), then one rename
# of a new link over $install_dir/training-agent makes it the current one.
versions="$install_dir/versions"
link="$install_dir/training-agent"
mkdir -p "$versions" || fail "cannot create $versions; check that it is writable"
previous=
if [ -L "$link" ]; then
    previous=$(readlink "$link")
    previous=${previous%/training-agent}
    previous=${previous##*/}
fi
built=$("$source_dir/training-agent" --version 2>/dev/null | sed -n 's/^training-agent \([^ ]*\).*/\1/p')
[ -n "$built" ] || fail "$source_dir/training-agent does not start on this machine; download the build for $os-$arch"
staging=$(mktemp -d "$versions/.$built-XXXXXX") || fail "cannot write to $versions; check that it is writable"
chmod 755 "$staging"
if ! cp -pR "$source_dir/training-agent" "$source_dir/_internal" "$staging/"; then
    rm -rf "$staging"
    fail "cannot copy the build to $versions (is the disk full?); nothing was changed"
fi
if [ "$os" = darwin ] && command -v xattr >/dev/null 2>&1; then
    # A browser download carries the quarantine flag; Gatekeeper would block the copy.
    xattr -dr com.apple.quarantine "$staging" 2>/dev/null || true
fi
folder=${staging##*/}
folder=${folder#.}
mv "$staging" "$versions/$folder"
ln -s "versions/$folder/training-agent" "$install_dir/.training-agent.new"
mv -f "$install_dir/.training-agent.new" "$link"
for old in "$versions"/* "$versions"/.[!.]*; do
    name=${old##*/}
    if [ -d "$old" ] && [ "$name" != "$folder" ] && [ "$name" != "$previous" ]; then
        rm -rf "$old"
    fi
done
# An enrollment file (the platform's enrolled download) must sit next to the executable
# that runs `install`, which deletes it once used: move it, never leave a copy behind.
enroll_file=training-agent.enroll.json
enroll_target="$versions/$folder/$enroll_file"
if [ -z "$from" ] && [ -f "$here/$enroll_file" ]; then
    mv -f "$here/$enroll_file" "$enroll_target"
    chmod 600 "$enroll_target"
fi
say "Installed $("$link" --version) to $install_dir."

# An upgrade without a new key or URL keeps the configuration as it is: the launcher
# already points at the executable just replaced.
if [ -n "${TRAINING_AGENT_HOME:-}" ]; then
    config="$TRAINING_AGENT_HOME/config/config.toml"
elif [ "$os" = darwin ]; then
    config="$HOME/Library/Application Support/training-agent/config.toml"
else
    config="${XDG_CONFIG_HOME:-$HOME/.config}/training-agent/config.toml"
fi
if [ -f "$config" ] && [ -z "${API_KEY:-}" ] && [ -z "${BACKEND_URL:-}" ] &&
    [ ! -f "$enroll_target" ]; then
    say "Upgraded; kept the settings in $config and the stored key (restart a running agent to use the new version)."
    exit 0
fi

# The key travels in the environment (API_KEY) or is asked for: never on a command line.
status=0
"$link" install --service "$service" $yes || status=$?
exit "$status"
