"""What ``packaging/build`` makes: the archive's layout, its checksum, and what the one-folder
build holds (everything the daemon needs, nothing of the training stack)."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.release.conftest import ROOT, Release
from tests.support.backend import BackendProcess
from tests.support.secret_service import check_secret_service_round_trip
from training_agent import __version__

# The first test to run also waits for the session's build (PyInstaller: a minute or two
# on a loaded machine), which counts toward its timeout.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

NEVER_BUNDLED = ("torch", "transformers", "datasets", "peft", "accelerate", "training_backend")


def bundled_names(release: Release) -> tuple[set[str], set[str]]:
    """The build's files in ``_internal`` and the modules in its Python archive (which
    PyInstaller appends to the executable)."""
    from PyInstaller.archive.readers import CArchiveReader

    archive = CArchiveReader(str(release.executable))
    modules = set(archive.open_embedded_archive("PYZ.pyz").toc)
    internal = release.unpacked / "_internal"
    files = {path.relative_to(internal).as_posix() for path in internal.rglob("*")}
    return files, modules


def test_the_archive_is_one_folder_with_the_build_and_the_installer(release: Release) -> None:
    with tarfile.open(release.archive) as archive:
        members = {member.name: member for member in archive.getmembers()}

    stem = release.stem
    assert {name.split("/")[0] for name in members} == {stem}
    top = {name.split("/")[1] for name in members if name != stem}
    assert top == {"training-agent", "_internal", "install.sh", "README.txt"}
    assert members[f"{stem}/_internal"].isdir()
    assert f"{stem}/_internal/base_library.zip" in members
    for name in ("training-agent", "install.sh"):
        assert members[f"{stem}/{name}"].mode & stat.S_IXUSR, name
    assert (release.unpacked / "install.sh").read_bytes() == (
        ROOT / "installer" / "install.sh"
    ).read_bytes()


def test_sha256sums_lists_the_archive(release: Release) -> None:
    digest = hashlib.sha256(release.archive.read_bytes()).hexdigest()
    assert release.sums.read_text() == f"{digest}  {release.archive.name}\n"


def test_version_names_the_build_commit_and_says_frozen(release: Release) -> None:
    shown = subprocess.run(
        [str(release.executable), "version"], capture_output=True, text=True, timeout=60
    )

    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert lines[0] == f"training-agent {__version__}"
    assert lines[1] == f"commit    {head}"
    assert lines[2].startswith("python    3.")
    assert lines[3].startswith("platform  linux-")
    assert lines[4] == "frozen    yes (one-folder executable)"


def test_the_training_stack_and_the_backend_stay_out(release: Release) -> None:
    files, modules = bundled_names(release)

    tops = {name.split(".")[0] for name in modules}
    assert not {name.split("/")[0] for name in files} & set(NEVER_BUNDLED)
    assert not tops & set(NEVER_BUNDLED)
    assert not [name for name in modules if name.startswith("training_agent.trainers")]
    assert {
        "training_agent.cli",
        "training_agent.daemon",
        "training_agent.status.server",
        "pynvml",  # GPUs out of the box, imported by name
    } <= modules


def test_every_keyring_backend_and_every_package_data_file_is_bundled(release: Release) -> None:
    files, modules = bundled_names(release)

    backends = {"SecretService", "Windows", "macOS", "kwallet", "libsecret", "chainer", "fail"}
    assert {f"keyring.backends.{name}" for name in backends} <= modules
    assert any(name.endswith("entry_points.txt") and "keyring" in name for name in files)
    package = ROOT / "training_agent"
    data = {
        "training_agent/" + path.relative_to(package).as_posix()
        for path in package.rglob("*")
        if path.is_file()
        and path.suffix not in (".py", ".pyc")
        and "__pycache__" not in path.parts
        and path.relative_to(package).parts[0] != "trainers"
        and path.name != "_build.json"
    }
    assert data <= files
    assert "training_agent/_build.json" in files
    templates = {
        f"training_agent/service/templates/{path.name}"
        for path in (ROOT / "packaging" / "service").iterdir()
        if path.suffix in (".service", ".plist", ".xml")
    }
    assert len(templates) == 3
    assert templates <= files


def test_the_executable_keeps_the_key_in_the_real_secret_service(
    release: Release, backend: BackendProcess, tmp_path: Path
) -> None:
    check_secret_service_round_trip([str(release.executable)], backend, tmp_path, "frozen")


def test_the_archive_is_signed_with_the_key_the_build_trusts(release: Release) -> None:
    from training_agent.update.signature import load_private_key, public_key_text, verify

    if release.key is None:
        pytest.skip("the reused build has no release-test.pem beside it")
    build_info = release.unpacked / "_internal" / "training_agent" / "_build.json"
    trusted = json.loads(build_info.read_text())["trusted_keys"]
    signature = release.archive.with_name(release.archive.name + ".sig").read_text()
    digest = hashlib.sha256(release.archive.read_bytes()).hexdigest()

    assert trusted == [public_key_text(load_private_key(release.key).public_key())]
    verify(release.archive.name, digest, signature, trusted)
