"""Everything under the agent's home that holds job data, tokens or reports is
owner-only, whatever the umask, and an older version's wider folders are narrowed."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from training_agent.executor.workspace import Workspace, narrow_workspaces
from training_agent.journal import JobJournal
from training_agent.paths import AgentPaths
from training_agent.reporting.outbox import Outbox

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)  # what most accounts have: new folders 0755, files 0644
    yield
    os.umask(old)


@pytest.fixture
def paths(tmp_path: Path) -> AgentPaths:
    return AgentPaths.under(tmp_path / "home")


def test_a_fresh_home_is_made_owner_only_at_every_level(paths: AgentPaths) -> None:
    assert paths.ensure() == []  # nothing was there to narrow
    for folder in (paths.config_dir, paths.journals_dir, paths.jobs_dir, paths.cache_dir):
        assert mode(folder) == 0o700 and mode(folder.parent) == 0o700, folder


def test_a_first_job_leaves_every_folder_0700_and_its_config_0600(paths: AgentPaths) -> None:
    workspace = Workspace.for_job(paths.jobs_dir, "job-1")
    workspace.create({"type": "command", "env": {"HF_TOKEN": "secret"}})
    JobJournal(paths.journals_dir, "job-1").start()
    outbox = Outbox(paths.outbox_file)
    outbox.close()

    for folder in (paths.jobs_dir, workspace.dir, paths.journals_dir, paths.state_dir):
        assert mode(folder) == 0o700, folder
    for file in (workspace.config_file, workspace.events_file, paths.outbox_file):
        assert mode(file) == 0o600, file


def test_a_work_dir_made_without_ensure_is_private_all_the_way_up(tmp_path: Path) -> None:
    jobs_dir = tmp_path / "data" / "jobs"  # neither exists yet
    Workspace.for_job(jobs_dir, "job-1").create({})
    assert mode(tmp_path / "data") == 0o700 and mode(jobs_dir) == 0o700


def test_a_home_left_wider_by_an_older_version_is_narrowed_at_start(paths: AgentPaths) -> None:
    old_job = paths.jobs_dir / "job-0"
    for folder in (paths.state_dir, paths.journals_dir, old_job):
        folder.mkdir(parents=True)
        folder.chmod(0o755)
    paths.data_dir.chmod(0o700)
    (old_job / "config.json").write_text("{}")
    (old_job / "checkpoint").write_text("weights")  # the trainer's own: left as it is
    paths.outbox_file.write_bytes(b"")
    paths.outbox_file.chmod(0o644)

    narrowed = paths.ensure()
    assert narrow_workspaces(paths.jobs_dir) == 1
    Outbox(paths.outbox_file).close()

    assert set(narrowed) == {paths.state_dir, paths.journals_dir, paths.jobs_dir}
    assert mode(old_job) == 0o700 and mode(old_job / "config.json") == 0o600
    assert mode(old_job / "checkpoint") == 0o644
    assert mode(paths.outbox_file) == 0o600
    assert paths.ensure() == [] and narrow_workspaces(paths.jobs_dir) == 0  # once


def test_a_link_in_a_work_dir_is_not_followed(paths: AgentPaths, tmp_path: Path) -> None:
    outside = tmp_path / "shared.json"
    outside.write_text("{}")
    outside.chmod(0o644)
    job = paths.jobs_dir / "job-0"
    job.mkdir(parents=True)
    (job / "config.json").symlink_to(outside)
    narrow_workspaces(paths.jobs_dir)
    assert mode(outside) == 0o644
