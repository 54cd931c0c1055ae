"""A FineTune Lab TrainingConfig run by the real agent with the built-in trainer, on a
dataset the backend holds."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.agent import agent_env, start_agent, wait_agent
from tests.support.backend import BackendProcess
from tests.support.e2e import job_json, make_user_and_key, submit
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
    env = agent_env(tmp_path / "agent", backend_url=backend.url, api_key=key)

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
