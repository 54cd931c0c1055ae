"""One update's work on disk: download, verify, unpack, try the new build.

1. :func:`download` streams the archive from the backend into the state directory,
   hashing it as it arrives;
2. :func:`verify` checks the SHA-256 the offer named *and* the Ed25519 signature
   against the keys this build trusts (``signature.trusted_keys``), whatever the
   backend said;
3. :func:`unpack` puts the build (``training-agent`` or ``training-agent.exe``, and
   ``_internal``) into a new, hidden folder of the install directory
   (``layout.InstallLayout.new_folder``), taking only those entries of the archive's top
   folder, with tarfile's ``data`` filter (no absolute paths, no links leaving the
   folder); a Windows release is a zip (zipfile drops absolute paths and ``..``);
4. :func:`try_build` runs ``<new folder>/training-agent version`` and expects the
   offered version: a build that cannot start on this machine is refused *before*
   anything is switched.

Every failure is an :class:`UpdateFailed` with one sentence; nothing half-done stays
behind (the caller removes the staged folder).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from training_agent.update.signature import SignatureError
from training_agent.update.signature import verify as verify_signature

TRY_TIMEOUT_S = 60.0
EXECUTABLES = ("training-agent", "training-agent.exe")  # Linux and macOS; Windows
BUILD_ENTRIES = (*EXECUTABLES, "_internal")


class UpdateFailed(Exception):
    """This update cannot go ahead; the message says why in one sentence."""


def sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def verify(
    archive: Path, *, filename: str, sha256: str, signature: str | None, keys: Iterable[str]
) -> None:
    """Raise :class:`UpdateFailed` unless ``archive`` is what the offer named and one of
    ``keys`` signed it."""
    actual = sha256_file(archive)
    if actual != sha256.lower():
        raise UpdateFailed(
            f"the download of {filename} does not match its SHA-256 (a damaged, truncated "
            "or tampered download); the agent keeps its version"
        )
    if not signature:
        raise UpdateFailed(f"{filename} is not signed; the agent installs only signed releases")
    try:
        verify_signature(filename, actual, signature, keys)
    except SignatureError as exc:
        raise UpdateFailed(f"refused {filename}: {exc}") from exc


def unpack(archive: Path, folder: Path) -> None:
    """Put the build inside ``archive`` (its one top folder) into the empty ``folder``."""
    scratch = folder / ".unpack"
    try:
        if zipfile.is_zipfile(archive):
            _unzip(archive, scratch)
        else:
            _untar(archive, scratch)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise UpdateFailed(f"cannot unpack {archive.name} ({exc})") from exc
    [top] = [path for path in scratch.iterdir()]
    executable = next((name for name in EXECUTABLES if (top / name).is_file()), EXECUTABLES[0])
    for name in (executable, "_internal"):
        if not (top / name).exists():
            raise UpdateFailed(f"{archive.name} holds no {name}; it is not an agent release")
        (top / name).rename(folder / name)
    shutil.rmtree(scratch)


def _untar(archive: Path, scratch: Path) -> None:
    with tarfile.open(archive, "r:gz") as opened:
        members = [m for m in opened.getmembers() if _in_build(m.name)]
        if not members:
            raise UpdateFailed(f"{archive.name} holds no training-agent build")
        opened.extractall(scratch, members=members, filter="data")


def _unzip(archive: Path, scratch: Path) -> None:
    with zipfile.ZipFile(archive) as opened:
        names = [name for name in opened.namelist() if _in_build(name)]
        if not names:
            raise UpdateFailed(f"{archive.name} holds no training-agent build")
        opened.extractall(scratch, members=names)


def _in_build(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return len(parts) >= 2 and parts[1] in BUILD_ENTRIES


def try_build(folder: Path, version: str) -> None:
    """Run the new build's ``version``; raise :class:`UpdateFailed` unless it answers
    ``training-agent <version>``."""
    executable = next((folder / n for n in EXECUTABLES if (folder / n).is_file()), folder)
    try:
        done = subprocess.run(
            [str(executable), "version"],
            capture_output=True,
            text=True,
            timeout=TRY_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise UpdateFailed(f"the new version does not start on this machine ({exc})") from exc
    first = (done.stdout.splitlines() or [""])[0]
    if done.returncode != 0 or first != f"training-agent {version}":
        said = (done.stderr.strip().splitlines() or [first or "nothing"])[-1][:200]
        raise UpdateFailed(
            f"the new version does not start on this machine (exit {done.returncode}: {said})"
        )
