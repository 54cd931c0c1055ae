"""Jobs whose dataset the backend holds: the real agent downloads it once and reuses it."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.support.agent import agent_env, start_agent, wait_agent
from tests.support.backend import BackendProcess
from tests.support.e2e import Owner, job_json, make_user_and_key, submit

pytestmark = pytest.mark.e2e

READER = (
    "import hashlib, os; path = os.environ['TRAINING_AGENT_DATASET']; "
    "print('dataset', path, hashlib.sha256(open(path, 'rb').read()).hexdigest())"
)


def submit_with_dataset(backend: BackendProcess, tmp_path: Path, data: Path) -> str:
    config = {"type": "command", "command": [sys.executable, "-c", READER]}
    return submit(backend, tmp_path, "alice", config, dataset=data)


def stored_files(backend: BackendProcess) -> set[Path]:
    database = make_url(backend.database_url).database
    assert database is not None
    return set((Path(database).parent / "datasets").glob("*.bin"))


def test_the_dataset_is_downloaded_once_checked_and_handed_to_the_job(
    backend: BackendProcess, tmp_path: Path
) -> None:
    owner = Owner(backend, make_user_and_key(backend, "alice"))
    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "hello"}\n' * 5000, encoding="utf-8")
    other = tmp_path / "other.jsonl"
    other.write_text('{"text": "bye"}\n', encoding="utf-8")
    first = submit_with_dataset(backend, tmp_path, data)
    before = stored_files(backend)
    second = submit_with_dataset(backend, tmp_path, data)
    third = submit_with_dataset(backend, tmp_path, other)
    # The second and third uploads vanish from the backend: the second job can only
    # run from the agent's cache; the third must fail saying what to do.
    for path in stored_files(backend) - before:
        path.unlink()
    env = agent_env(
        tmp_path / "agent",
        backend_url=backend.url,
        api_key=owner.key,
        TRAINING_AGENT_ALLOW_COMMAND_JOBS="1",
    )

    code, output = wait_agent(start_agent(env, "--max-jobs", "3"))

    assert code == 0, output
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    seen = []
    for job_id in (first, second):
        assert job_json(backend, job_id)["job"]["status"] == "completed", output
        lines = [line for line in owner.logs(job_id) if line.startswith("dataset ")]
        assert len(lines) == 1 and lines[0].endswith(digest), owner.logs(job_id)
        seen.append(lines[0].split()[1])
    assert seen[0] == seen[1] == str(tmp_path / "agent" / "cache" / "datasets" / digest / data.name)
    failed = job_json(backend, third)["job"]
    assert failed["status"] == "failed"
    assert failed["error"] == (
        "the backend no longer has the dataset other.jsonl of this job; "
        "upload the dataset again and resubmit the job"
    )
