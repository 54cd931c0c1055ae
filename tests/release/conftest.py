"""One real build of the release archive per test session, shared by every test needing it.

``packaging/build`` runs once (PyInstaller, about a minute) into a session temp dir; the
tests get the archive, ``SHA256SUMS`` and the archive unpacked. Without PyInstaller the
tests skip, except under ``CI=true``, where that is a failure.
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
from training_agent.version import current_arch

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 900


@dataclass(frozen=True)
class Release:
    """What ``packaging/build`` made: the archive, its SHA256SUMS, and it unpacked."""

    archive: Path
    sums: Path
    unpacked: Path  # the archive's top-level folder

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
    done = subprocess.run(
        [str(ROOT / "packaging" / "build"), "--dist", str(root / "dist")]
        + ["--work", str(root / "work")],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    archive = Path(done.stdout.strip().splitlines()[-1])
    stem = f"training-agent-{__version__}-linux-{current_arch()}"
    assert archive == root / "dist" / f"{stem}.tar.gz"
    with tarfile.open(archive) as opened:
        opened.extractall(root / "unpacked", filter="tar")
    return Release(archive=archive, sums=root / "dist" / "SHA256SUMS", unpacked=root / "unpacked" / stem)
