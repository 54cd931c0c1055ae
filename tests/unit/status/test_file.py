"""status.json: owner-only, atomic, and a file left by a dead agent is seen as stale."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from training_agent.errors import AgentNotRunningError, StateError
from training_agent.status.client import find_agent
from training_agent.status.file import StatusFile, new_token, this_process_created_at


def make_file(**overrides: object) -> StatusFile:
    fields: dict[str, object] = {
        "pid": os.getpid(),
        "pid_created_at": this_process_created_at(),
        "port": 41234,
        "token": new_token(),
        "agent_id": "agent_0123456789abcdef",
        "version": "1.2.3",
        "started_at": time.time(),
    }
    fields.update(overrides)
    return StatusFile(**fields)  # type: ignore[arg-type]


def test_written_owner_only_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "state" / "status.json"
    written = make_file()
    old_umask = os.umask(0)  # even a permissive umask must not open it up
    try:
        written.write(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert StatusFile.read(path) == written
    assert written.url == "http://127.0.0.1:41234"


def test_rewriting_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    make_file(port=1).write(path)
    inode = path.stat().st_ino
    make_file(port=2).write(path)
    assert StatusFile.read(path).port == 2  # type: ignore[union-attr]
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]


def test_tokens_are_random_and_long() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(token) >= 43 for token in tokens)


def test_a_live_process_is_not_stale() -> None:
    assert not make_file().is_stale()


def test_a_dead_pid_is_stale(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    path = tmp_path / "status.json"
    make_file(pid=child.pid, pid_created_at=None).write(path)
    assert StatusFile.read(path).is_stale()  # type: ignore[union-attr]
    with pytest.raises(AgentNotRunningError, match=f"pid {child.pid} .* has exited"):
        find_agent(path)


def test_a_reused_pid_is_stale() -> None:
    # Our pid, but the file says the process started an hour earlier: another process.
    created = this_process_created_at()
    assert created is not None
    assert make_file(pid_created_at=created - 3600).is_stale()


def test_no_file_means_no_agent(tmp_path: Path) -> None:
    assert StatusFile.read(tmp_path / "status.json") is None
    with pytest.raises(AgentNotRunningError, match="no agent is running here"):
        find_agent(tmp_path / "status.json")


def test_a_garbled_file_is_a_readable_error(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    path.write_text('{"pid": "x"')
    with pytest.raises(StateError, match="delete it if no agent is running"):
        StatusFile.read(path)


def test_remove_leaves_another_agents_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    ours, theirs = make_file(), make_file()
    theirs.write(path)
    ours.remove(path)
    assert path.exists()
    theirs.remove(path)
    assert not path.exists()
    theirs.remove(path)  # already gone: nothing to do
