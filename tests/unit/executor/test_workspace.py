"""Workspace: the job dir and the child's environment."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from training_agent.errors import JobConfigError, StateError
from training_agent.executor.workspace import Workspace, is_agent_secret


def test_create_makes_a_private_dir_with_config_and_events(tmp_path: Path) -> None:
    workspace = Workspace.for_job(tmp_path / "jobs", "job-42")
    workspace.create({"type": "demo", "epochs": 1})
    assert workspace.dir == tmp_path / "jobs" / "job-42"
    assert stat.S_IMODE(workspace.dir.stat().st_mode) == 0o700
    assert json.loads(workspace.config_file.read_text()) == {"type": "demo", "epochs": 1}
    assert workspace.events_file.read_bytes() == b""


def test_a_reused_dir_keeps_files_but_starts_events_over(tmp_path: Path) -> None:
    workspace = Workspace.for_job(tmp_path, "job-42")
    workspace.create({})
    (workspace.dir / "checkpoint.bin").write_bytes(b"weights")
    workspace.events_file.write_text('{"type": "output", "path": "old"}\n')
    workspace.create({})
    assert (workspace.dir / "checkpoint.bin").read_bytes() == b"weights"
    assert workspace.events_file.read_bytes() == b""


@pytest.mark.parametrize("job_id", ["", "..", "../etc", "a/b", "a\\b", ".hidden", "x" * 200])
def test_unsafe_job_ids_are_refused(tmp_path: Path, job_id: str) -> None:
    with pytest.raises(JobConfigError, match="cannot be used as a directory name"):
        Workspace.for_job(tmp_path, job_id)


@pytest.mark.parametrize(
    "name",
    [
        "API_KEY",
        "TRAINING_AGENT_API_KEY",
        "TRAINING_AGENT_ALLOW_COMMAND_JOBS",
        "OPENAI_API_KEY",
        "HF_TOKEN",
        "github_token",
        "AWS_SECRET",
        "DB_PASSWORD",
    ],
)
def test_agent_secrets_are_recognised(name: str) -> None:
    assert is_agent_secret(name)


@pytest.mark.parametrize("name", ["BACKEND_URL", "PATH", "HOME", "TOKENIZERS_PARALLELISM"])
def test_ordinary_variables_are_kept(name: str) -> None:
    assert not is_agent_secret(name)


def test_child_env_strips_secrets_and_adds_the_job_variables(tmp_path: Path) -> None:
    workspace = Workspace.for_job(tmp_path, "job-7")
    inherited = {"PATH": "/bin", "API_KEY": "wak_x", "HF_TOKEN": "hf_agent", "BACKEND_URL": "u"}
    env = workspace.child_env(inherited, {"HF_TOKEN": "hf_job", "EXTRA": "1"})
    assert env == {
        "PATH": "/bin",
        "BACKEND_URL": "u",
        "HF_TOKEN": "hf_job",  # the job's own, set on purpose in its config
        "EXTRA": "1",
        "TRAINING_AGENT_JOB_ID": "job-7",
        "TRAINING_AGENT_JOB_DIR": str(tmp_path / "job-7"),
        "TRAINING_AGENT_EVENTS_FILE": str(tmp_path / "job-7" / "events.jsonl"),
        "TRAINING_AGENT_CONTROL_FILE": str(tmp_path / "job-7" / "control.json"),
        "PYTHONUNBUFFERED": "1",
    }


def test_the_agents_assignments_win_over_the_jobs_own(tmp_path: Path) -> None:
    workspace = Workspace.for_job(tmp_path, "job-7")
    env = workspace.child_env(
        {"CUDA_VISIBLE_DEVICES": "0,1,2,3"},
        {"CUDA_VISIBLE_DEVICES": "0"},
        {"CUDA_VISIBLE_DEVICES": "2,3"},
    )
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3"


def test_a_job_may_not_set_the_agents_variables(tmp_path: Path) -> None:
    workspace = Workspace.for_job(tmp_path, "job-7")
    with pytest.raises(JobConfigError, match="may not set TRAINING_AGENT_EVENTS_FILE"):
        workspace.child_env({}, {"TRAINING_AGENT_EVENTS_FILE": "/elsewhere"})


def test_a_config_that_is_not_json_is_a_job_config_error(tmp_path: Path) -> None:
    workspace = Workspace.for_job(tmp_path, "job-1")
    with pytest.raises(JobConfigError, match="cannot be written as JSON"):
        workspace.create({"value": {1, 2}})


def test_a_disk_failure_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "jobs").write_text("a file where the jobs dir should be")
    workspace = Workspace.for_job(tmp_path / "jobs", "job-1")
    with pytest.raises(StateError, match="cannot prepare the job directory"):
        workspace.create({})
