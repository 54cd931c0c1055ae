"""Build this machine's release archive of the agent (run through ``packaging/build``).

    packaging/build [--dist DIR] [--work DIR] [--sign KEYFILE] [--trust PUBKEY]…
                    [--version V] [--repack FOLDER]

1. PyInstaller builds the one-folder executable (``training-agent`` and its ``_internal``
   folder) from ``packaging/training-agent.spec`` with this checkout's version and
   commit baked in;
2. that build and this platform's installers go into one folder named like the archive,
   ``training-agent-<version>-<os>-<arch>`` (os: linux, darwin, windows; arch: amd64,
   arm64);
3. that folder becomes ``<name>.tar.gz`` (``.zip`` on Windows) in ``--dist`` (default
   ``dist``), and ``SHA256SUMS`` there gets the archive's line (other lines are kept,
   so several builds can share one folder).

With ``--sign KEYFILE`` (an Ed25519 key from ``packaging/sign.py genkey``) the archive
gets ``<archive>.sig`` beside it, and the build trusts that key (and each ``--trust``
public key) for its self-update: their public halves are baked into
``training_agent/_build.json``. ``--version V`` bakes another version than the
source's; ``--repack FOLDER`` skips PyInstaller and packs an existing one-folder build
(the ``training-agent`` folder PyInstaller made) with this version and these keys:
how a release candidate becomes the release without a second, different build, and
how the release tests make version B of the build they already have.

Prints the archive's path last. Standard library only, plus PyInstaller and this
project (for ``--sign``) in the same Python (the ``build`` extra).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "packaging" / "training-agent.spec"
INSTALLERS = ROOT / "installer"
SUMS_FILE = "SHA256SUMS"
_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_OSES = {"linux": "linux", "darwin": "darwin", "win32": "windows"}
#: What each platform's folder holds besides the executable: (source, name, executable).
_EXTRAS: dict[str, list[tuple[str, str, bool]]] = {
    "linux": [("install.sh", "install.sh", True)],
    "darwin": [
        ("install.sh", "install.sh", True),
        ("install-macos.command", "Install Training Agent.command", True),
    ],
    "windows": [("install.ps1", "install.ps1", False), ("install.cmd", "install.cmd", False)],
}
_README = {
    "linux": "Run ./install.sh (it reads API_KEY and BACKEND_URL from the environment, or asks).",
    "darwin": "Double-click 'Install Training Agent.command', or run ./install.sh in a "
    "terminal (it reads API_KEY and BACKEND_URL from the environment, or asks).",
    "windows": "Double-click install.cmd, or run .\\install.ps1 in PowerShell (it reads "
    "API_KEY and BACKEND_URL from the environment, or asks).",
}


@dataclass(frozen=True)
class Target:
    """The release this build makes."""

    version: str
    os: str
    arch: str

    @property
    def stem(self) -> str:
        """The archive's name without extension, also its top-level folder."""
        return f"training-agent-{self.version}-{self.os}-{self.arch}"

    @property
    def archive_name(self) -> str:
        return f"{self.stem}.{'zip' if self.os == 'windows' else 'tar.gz'}"

    @property
    def executable_name(self) -> str:
        return "training-agent.exe" if self.os == "windows" else "training-agent"


def source_version() -> str:
    """``__version__`` of the training_agent in this checkout."""
    text = (ROOT / "training_agent" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if found is None:
        raise SystemExit("packaging/build: no __version__ in training_agent/__init__.py")
    return found.group(1)


def this_target() -> Target:
    """The release of this machine's OS and architecture."""
    machine = platform.machine().lower()
    os_name = next((name for key, name in _OSES.items() if sys.platform.startswith(key)), None)
    if os_name is None or machine not in _ARCHES:
        raise SystemExit(f"packaging/build: cannot build for {sys.platform}/{machine}")
    return Target(version=source_version(), os=os_name, arch=_ARCHES[machine])


def source_commit() -> str:
    """The commit being built: ``TRAINING_AGENT_BUILD_COMMIT``, CI's, or git's."""
    for name in ("TRAINING_AGENT_BUILD_COMMIT", "GITHUB_SHA"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        )
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def run_pyinstaller(target: Target, work: Path, trusted: list[str]) -> Path:
    """Build the one-folder executable under ``work``; the folder it is in."""
    env = {
        **os.environ,
        "TRAINING_AGENT_BUILD_VERSION": target.version,
        "TRAINING_AGENT_BUILD_COMMIT": source_commit(),
        "TRAINING_AGENT_BUILD_TRUSTED_KEYS": ",".join(trusted),
    }
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN"]
    command += ["--distpath", str(work / "dist"), "--workpath", str(work / "build"), str(SPEC)]
    done = subprocess.run(command, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"packaging/build: PyInstaller failed (exit {done.returncode})")
    return work / "dist" / "training-agent"


@dataclass(frozen=True)
class Member:
    """One entry of the archive's folder: a file (from ``source`` or ``content``), a
    folder, or a symbolic link (``link``: its target, as PyInstaller wrote it)."""

    name: str
    mode: int = 0o644
    source: Path | None = None
    content: bytes | None = None
    link: str | None = None
    folder: bool = False

    def data(self) -> bytes | None:
        """The file's bytes; None for a folder or a link."""
        if self.content is not None:
            return self.content
        return None if self.source is None else self.source.read_bytes()


def build_members(built: Path) -> list[Member]:
    """Everything PyInstaller put in ``built`` (the executable, ``_internal``), in a
    stable order, with executable bits kept and symbolic links kept as links."""
    members: list[Member] = []
    for path in sorted(built.rglob("*")):
        name = path.relative_to(built).as_posix()
        if path.is_symlink():
            members.append(Member(name, 0o777, link=os.readlink(path)))
        elif path.is_dir():
            members.append(Member(name, 0o755, folder=True))
        else:
            executable = os.access(path, os.X_OK)
            members.append(Member(name, 0o755 if executable else 0o644, source=path))
    return members


def folder_members(target: Target, built: Path) -> list[Member]:
    """Every entry of the archive's folder: the build, the installers, a README."""
    members = build_members(built)
    for source, name, is_executable in _EXTRAS[target.os]:
        members.append(Member(name, 0o755 if is_executable else 0o644, source=INSTALLERS / source))
    readme = f"training-agent {target.version}\n\n{_README[target.os]}\n"
    members.append(Member("README.txt", content=readme.encode()))
    return members


def write_archive(target: Target, members: list[Member], dist: Path) -> Path:
    """The archive with one top-level folder; tar keeps the exec bits and links, zip for
    Windows (whose builds have no links)."""
    dist.mkdir(parents=True, exist_ok=True)
    path = dist / target.archive_name
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))
    if target.os == "windows":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for member in members:
                if (data := member.data()) is not None:
                    archive.writestr(f"{target.stem}/{member.name}", data)
        return path
    with tarfile.open(path, "w:gz") as archive:
        archive.addfile(_tar_info(target.stem, Member("", 0o755, folder=True), mtime, None))
        for member in members:
            data = member.data()
            info = _tar_info(f"{target.stem}/{member.name}", member, mtime, data)
            archive.addfile(info, None if data is None else io.BytesIO(data))
    return path


def _tar_info(name: str, member: Member, mtime: int, data: bytes | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime = member.mode, mtime
    if member.folder:
        info.type = tarfile.DIRTYPE
    elif member.link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, member.link
    else:
        info.size = len(data or b"")
    return info


def sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def record_checksum(sums: Path, archive: Path) -> None:
    """Add or replace ``archive``'s line in ``sums`` (sha256sum's format), sorted by name."""
    lines: dict[str, str] = {}
    if sums.exists():
        for line in sums.read_text(encoding="utf-8").splitlines():
            digest, _, name = line.partition("  ")
            if name:
                lines[name.lstrip("*")] = digest
    lines[archive.name] = sha256_file(archive)
    text = "".join(f"{digest}  {name}\n" for name, digest in sorted(lines.items()))
    sums.write_text(text, encoding="utf-8", newline="\n")


def repack(folder: Path, work: Path, target: Target, trusted: list[str]) -> Path:
    """A copy of the one-folder build in ``folder`` (PyInstaller's output, or an unpacked
    release: only ``training-agent`` and ``_internal`` are taken) under ``work`` with
    ``target``'s version and these trusted keys in its ``_build.json``; the copy."""
    build_file = Path("_internal") / "training_agent" / "_build.json"
    if not (folder / build_file).is_file():
        raise SystemExit(f"packaging/build: {folder} is not a one-folder build (no {build_file})")
    copy = work / "repacked" / "training-agent"
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir(parents=True)
    shutil.copy2(folder / "training-agent", copy / "training-agent")
    shutil.copytree(folder / "_internal", copy / "_internal", symlinks=True)
    info = json.loads((copy / build_file).read_text(encoding="utf-8"))
    info.update(version=target.version, trusted_keys=trusted)
    (copy / build_file).write_text(json.dumps(info) + "\n", encoding="utf-8")
    return copy


def public_keys(sign: Path | None, trust: list[str]) -> list[str]:
    """The signing key's public half and the ``--trust`` keys (text, or files holding it)."""
    keys = []
    if sign is not None:
        keys.append(_run_sign_tool("pubkey", str(sign)))
    for value in trust:
        keys.append(Path(value).read_text().strip() if Path(value).is_file() else value.strip())
    return keys


def _run_sign_tool(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "packaging" / "sign.py"), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"packaging/build: packaging/sign.py {args[0]} failed: {done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="packaging/build", description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="where archives go")
    parser.add_argument("--work", type=Path, default=ROOT / "build", help="PyInstaller's work dir")
    parser.add_argument("--sign", type=Path, metavar="KEYFILE", help="sign with this Ed25519 key")
    parser.add_argument("--trust", action="append", default=[], metavar="PUBKEY")
    parser.add_argument("--version", help="the version to bake in (default: the source's)")
    parser.add_argument("--repack", type=Path, metavar="FOLDER", help="pack this build again")
    args = parser.parse_args(argv)
    target = this_target()
    if args.version:
        if not re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z.+-]{0,32}", args.version):
            raise SystemExit(f"packaging/build: {args.version!r} is not a release version")
        target = Target(version=args.version, os=target.os, arch=target.arch)
    trusted = public_keys(args.sign, args.trust)
    work = args.work.resolve()
    if args.repack is not None:
        built = repack(args.repack.resolve(), work, target, trusted)
    else:
        built = run_pyinstaller(target, work, trusted)
    archive = write_archive(target, folder_members(target, built), args.dist.resolve())
    record_checksum(archive.parent / SUMS_FILE, archive)
    if args.sign is not None:
        _run_sign_tool("sign", str(args.sign), str(archive))
    print(archive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
