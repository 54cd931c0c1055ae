"""A FineTune Lab TrainingConfig run by the real agent with the built-in trainer, on a
dataset the backend holds."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.agent import agent_env, start_agent, wait_agent
from tests.support.backend import BackendProcess
from tests.support.e2e import Owner, job_json, make_user_and_key, submit
from tests.trainers.conftest import chat_rows, training_config
from training_agent.trainers import tiny

pytestmark = pytest.mark.e2e

EXPECTED = {
    "train_loss",
    "eval_loss",
    "learning_rate",
    "grad_norm",
    "perplexity",
    "train_perplexity",
    "samples_per_second",
    "tokens_per_second",
}


def test_training_config_runs_with_every_metric(backend: BackendProcess, tmp_path: Path) -> None:
    tiny_model = tiny.build(tmp_path / "model")
    data = tmp_path / "chat.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in chat_rows(40)), encoding="utf-8")
    # The dataset travels through the backend (dataset_download): the config names a
    # path no agent has, which the agent replaces with its downloaded copy.
    config = training_config(tiny_model, "uploads/chat.jsonl", num_epochs=2, batch_size=6)
    config["training"]["eval_steps"] = 3
    config["data"] = {"eval_split": 0.1}
    key = make_user_and_key(backend, "alice")
    job_id = submit(backend, tmp_path, "alice", config, dataset=data)
    # The model is a local folder: the owner lets jobs read it (data_dirs).
    env = agent_env(
        tmp_path / "agent",
        backend_url=backend.url,
        api_key=key,
        TRAINING_AGENT_DATA_DIRS=str(tiny_model),
    )

    code, output = wait_agent(start_agent(env, "--max-jobs", "1"), timeout_s=110)

    assert code == 0, output
    shown = job_json(backend, job_id)
    assert shown["job"]["status"] == "completed", shown
    assert shown["job"]["total_steps"] == 12
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=backend.url, headers=headers) as http:
        metrics = http.get(f"/api/training/local/{job_id}/metrics").json()["metrics"]
    assert sorted({m["step"] for m in metrics}) == list(range(1, 13))
    seen = {name for m in metrics for name, value in m.items() if value is not None}
    assert seen >= EXPECTED, EXPECTED - seen


def test_a_job_cannot_make_the_agent_run_model_code_or_read_its_files(
    backend: BackendProcess, tmp_path: Path
) -> None:
    # A job config asks for trust_remote_code on a local model whose tokenizer ships its
    # own module (it would leave a marker), then for a file of the agent's machine.
    from tests.trainers.test_job_policy import asking_for_code, with_own_code

    shared = tmp_path / "shared-models"  # the one folder the owner lets jobs read
    shared.mkdir()
    model, marker = with_own_code(tiny.build(tmp_path / "tiny"), shared)
    data = tmp_path / "chat.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in chat_rows(8)), encoding="utf-8")
    key = make_user_and_key(backend, "mallory")
    wants_code = submit(backend, tmp_path, "mallory", asking_for_code(model, "up/chat.jsonl"),
                        dataset=data)  # fmt: skip
    secret = tmp_path / "agent-secret.jsonl"
    secret.write_text(json.dumps({"text": "the owner's secret"}) + "\n")
    wants_file = submit(backend, tmp_path, "mallory", training_config(model, str(secret)))
    env = agent_env(
        tmp_path / "agent", backend_url=backend.url, api_key=key,
        TRAINING_AGENT_DATA_DIRS=str(shared),
    )  # fmt: skip

    code, output = wait_agent(start_agent(env, "--max-jobs", "2"), timeout_s=110)

    assert code == 0, output
    first, second = job_json(backend, wants_code), job_json(backend, wants_file)
    assert first["job"]["status"] == "failed", first
    assert "needs its own Python code (trust_remote_code)" in first["job"]["error"]
    assert "allow_remote_code" in first["job"]["error"]
    assert not marker.exists()
    assert second["job"]["status"] == "failed", second
    assert second["job"]["error"] == (
        f"dataset_path {secret} is outside the folders this agent lets jobs read (the job's "
        "work folder, the dataset cache and data_dirs); the machine's owner can add its "
        "folder to data_dirs (TRAINING_AGENT_DATA_DIRS) to allow it"
    )
    owner = Owner(backend, key)
    logs = owner.logs(wants_code) + owner.logs(wants_file)
    assert logs and not any("owner's secret" in line for line in logs)
