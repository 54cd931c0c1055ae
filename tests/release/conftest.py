"""One real build of the release archive per test session, shared by every test needing it.

``packaging/build`` runs once (PyInstaller, about a minute) into a session temp dir; the
tests get the archive, ``SHA256SUMS`` and the archive unpacked. Without PyInstaller the
tests skip, except under ``CI=true``, where that is a failure. While iterating on the
tests, ``TRAINING_AGENT_TEST_DIST=DIR`` reuses what an earlier ``packaging/build --dist
DIR --sign DIR/release-test.pem`` of this checkout made instead of building again.

The build is signed with a throwaway key made for the session (``Release.key``), which
the build therefore trusts: the self-update tests sign version B with it (or with
another key, to see it refused).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from training_agent import __version__
from training_agent.commands.version import current_arch

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 900
KEY_NAME = "release-test.pem"


@dataclass(frozen=True)
class Release:
    """What ``packaging/build`` made: the archive, its SHA256SUMS, and it unpacked."""

    archive: Path
    sums: Path
    unpacked: Path  # the archive's top-level folder
    key: Path | None  # the release key the build was signed with and trusts

    @property
    def stem(self) -> str:
        return self.unpacked.name

    @property
    def executable(self) -> Path:
        return self.unpacked / "training-agent"


def _pyinstaller_missing() -> bool:
    found = subprocess.run(
        [sys.executable, "-c", "import PyInstaller"], capture_output=True, check=False
    )
    return found.returncode != 0


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    if _pyinstaller_missing():
        if os.environ.get("CI") == "true":
            pytest.fail("PyInstaller is not installed: scripts/setup dev (the build extra)")
        pytest.skip("PyInstaller is not installed (pip install -e '.[build]')")
    root = tmp_path_factory.mktemp("release")
    reused = os.environ.get("TRAINING_AGENT_TEST_DIST")
    key = Path(reused) / KEY_NAME if reused else make_key(root / KEY_NAME)
    archive = _reuse(Path(reused)) if reused else _build(root, key)
    stem = f"training-agent-{__version__}-linux-{current_arch()}"
    assert archive.name == f"{stem}.tar.gz"
    with tarfile.open(archive) as opened:
        opened.extractall(root / "unpacked", filter="tar")
    return Release(
        archive=archive,
        sums=archive.parent / "SHA256SUMS",
        unpacked=root / "unpacked" / stem,
        key=key if key.is_file() else None,
    )


def make_key(path: Path) -> Path:
    """A new Ed25519 release key at ``path`` (``packaging/sign.py genkey``)."""
    command = [sys.executable, str(ROOT / "packaging" / "sign.py"), "genkey", str(path)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return path


def _reuse(dist: Path) -> Path:
    [archive] = dist.glob(f"training-agent-{__version__}-linux-*.tar.gz")
    return archive


def _build(root: Path, key: Path) -> Path:
    done = subprocess.run(
        [
            str(ROOT / "packaging" / "build"),
            "--dist",
            str(root / "dist"),
            "--work",
            str(root / "work"),
            "--sign",
            str(key),
        ],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return Path(done.stdout.strip().splitlines()[-1])
