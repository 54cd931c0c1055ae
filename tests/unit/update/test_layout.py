"""The install directory's layout: a new build in its own folder, one rename of the stable
link to switch, the folder before kept for a rollback, older ones removed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from training_agent.service.spec import agent_program
from training_agent.update.layout import InstallLayout, stable_executable

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the linked layout is for Linux and macOS")


def fill(layout: InstallLayout, version: str) -> Path:
    """A staged build folder holding an executable that names its version."""
    folder = layout.new_folder(version)
    executable = folder / "training-agent"
    executable.write_text(f"#!/bin/sh\necho {version}\n")
    executable.chmod(0o755)
    (folder / "_internal").mkdir()
    return folder


def test_a_staged_build_is_hidden_until_activated_then_the_link_points_at_it(
    tmp_path: Path,
) -> None:
    layout = InstallLayout(tmp_path / "bin", platform="linux")

    staged = fill(layout, "0.3.0")

    assert staged.name.startswith(".0.3.0-")
    assert layout.current() is None
    active = layout.activate(staged)
    assert active.name == staged.name[1:] and not staged.exists()
    assert os.readlink(layout.link) == f"versions/{active.name}/training-agent"
    assert layout.current() == active.resolve()
    assert (layout.link).read_text().endswith("echo 0.3.0\n")


def test_switching_replaces_an_old_one_file_executable_and_the_previous_link(
    tmp_path: Path,
) -> None:
    layout = InstallLayout(tmp_path / "bin", platform="linux")
    layout.install_dir.mkdir()
    layout.link.write_text("the one-file build of an older release")

    first = layout.activate(fill(layout, "0.2.0"))
    assert layout.link.is_symlink()
    second = layout.activate(fill(layout, "0.3.0"))

    assert layout.current() == second.resolve()
    assert first.is_dir()  # a running agent keeps its folder
    assert not list(layout.install_dir.glob(".training-agent.new"))


def test_prune_keeps_the_current_and_the_previous_build_only(tmp_path: Path) -> None:
    layout = InstallLayout(tmp_path / "bin", platform="linux")
    builds = [layout.activate(fill(layout, f"0.{minor}.0")) for minor in range(4)]
    unfinished = fill(layout, "0.9.0")

    removed = layout.prune(keep=(builds[3], builds[2]))

    assert sorted(removed) == sorted([builds[0], builds[1], unfinished])
    assert sorted(layout.versions_dir.iterdir()) == sorted([builds[2], builds[3]])


def test_the_stable_path_of_an_installed_build_is_the_link(tmp_path: Path) -> None:
    layout = InstallLayout(tmp_path / "bin", platform="linux")
    active = layout.activate(fill(layout, "0.3.0"))

    assert stable_executable(active / "training-agent") == layout.link
    assert stable_executable(layout.link) == layout.link
    assert InstallLayout.of_executable(active / "training-agent") == layout


def test_an_unpacked_archive_is_run_from_where_it_is(tmp_path: Path) -> None:
    unpacked = tmp_path / "versions" / "training-agent-0.3.0-linux-amd64"
    unpacked.mkdir(parents=True)
    executable = unpacked / "training-agent"
    executable.write_text("")

    # a folder named "versions" above is not enough: the install directory's link is
    assert InstallLayout.of_executable(executable) is None
    assert stable_executable(executable) == executable.resolve()


def test_service_units_and_the_launcher_run_the_stable_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = InstallLayout(tmp_path / "bin", platform="linux")
    active = layout.activate(fill(layout, "0.3.0"))
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(active / "training-agent"))

    # so an upgrade, which only moves the link, needs no new unit and no new launcher
    assert agent_program() == (str(layout.link),)
