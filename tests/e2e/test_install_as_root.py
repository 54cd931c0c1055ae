"""A root install of the system service never reads or writes through what the service's
user (and so any job) could have planted in its home. Real files, a real user (``nobody``
stands for the service's user), the real backend and the real service manager; a
stand-in for getent, chown and systemctl."""

from __future__ import annotations

import io
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.backend import BackendProcess
from tests.support.e2e import make_user_and_key
from tests.support.service import FakeRunner
from training_agent.commands.install import Installer, InstallOptions
from training_agent.errors import ConfigError
from training_agent.paths import AgentPaths
from training_agent.service import systemd
from training_agent.service.systemd import system_paths

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or (os.geteuid() != 0 and not os.environ.get("CI")),
        reason="needs root (CI runs as root)",
    ),
]

NOBODY = pwd.getpwnam("nobody") if hasattr(os, "geteuid") else None
UNTOUCHED = "root's file, untouched\n"
ROOTS_SECRET = "# root's eyes only: SECRET-HASH\n"


@pytest.fixture
def outside(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """The system service's home, in a directory ``nobody`` can reach (pytest's own
    tmp dirs are root's, 0700), with ``nobody`` standing for the service's user."""
    path = Path(tempfile.mkdtemp(prefix="system-home-"))
    path.chmod(0o711)
    monkeypatch.setattr(systemd, "SYSTEM_HOME", path / "var-lib-training-agent")
    monkeypatch.setattr(systemd, "SYSTEM_USER", "nobody")
    monkeypatch.setattr(systemd, "SYSTEM_UNIT_DIR", tmp_path / "etc")
    yield path
    shutil.rmtree(path)


def root_file(path: Path, text: str, mode: int) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def nobodys_home(home: Path) -> AgentPaths:
    """The home an earlier install left: every folder the service's user's."""
    assert NOBODY is not None
    paths = system_paths(home)
    for folder in (home, paths.config_dir, paths.state_dir):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chown(folder, NOBODY.pw_uid, NOBODY.pw_gid)
    return paths


def install(backend: BackendProcess, tmp_path: Path) -> tuple[int, str]:
    key = make_user_and_key(backend, "root-install")
    out = io.StringIO()
    installer = Installer(
        paths=AgentPaths.under(tmp_path / "user"),
        environ={"API_KEY": key, "BACKEND_URL": backend.url},
        stdin=io.StringIO(),
        out=out,
        bin_dir=tmp_path / "bin",
        executable_dir=tmp_path,
        runner=FakeRunner(),  # getent finds the user; chown and systemctl are recorded
    )
    return installer.install(InstallOptions(yes=True, service="system")), out.getvalue()


def test_links_planted_at_temporary_names_are_not_followed(
    backend: BackendProcess, outside: Path, tmp_path: Path
) -> None:
    home = outside / "var-lib-training-agent"
    paths = nobodys_home(home)
    victims = [root_file(outside / f"victim-{n}", UNTOUCHED, 0o644) for n in range(3)]
    # The names the installer wrote through before: a job could plant these.
    (paths.config_dir / ".config.toml.tmp").symlink_to(victims[0])
    (paths.state_dir / ".agent_id.tmp").symlink_to(victims[1])
    (paths.config_dir / ".credentials.json.tmp").symlink_to(victims[2])

    code, said = install(backend, tmp_path)

    assert code == 0, said
    assert all(victim.read_text() == UNTOUCHED for victim in victims)
    for written in (paths.config_file, paths.agent_id_file, paths.config_dir / "credentials.json"):
        info = written.lstat()
        assert written.is_file() and not written.is_symlink(), written
        assert (info.st_uid, info.st_mode & 0o777) == (NOBODY.pw_uid, 0o600), written  # type: ignore[union-attr]
    assert paths.config_file.read_text().startswith(f'backend_url = "{backend.url}"')


def test_a_config_linked_to_roots_file_is_not_read_and_the_install_says_why(
    backend: BackendProcess, outside: Path, tmp_path: Path
) -> None:
    home = outside / "var-lib-training-agent"
    paths = nobodys_home(home)
    # Valid TOML with no setting in it, so nothing but the permission can stop the read.
    secret = root_file(outside / "root-only.toml", ROOTS_SECRET, 0o600)
    paths.config_file.symlink_to(secret)

    with pytest.raises(ConfigError) as refused:
        install(backend, tmp_path)

    message = str(refused.value)
    assert str(paths.config_file) in message
    assert "\n" not in message and "SECRET" not in message
    assert secret.read_text() == ROOTS_SECRET
    for path in home.rglob("*"):  # root's secret was not copied into nobody's home
        if path.is_file() and not path.is_symlink():
            assert "SECRET" not in path.read_text(errors="replace"), path
