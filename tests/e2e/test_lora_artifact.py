"""The built-in trainer's LoRA adapter of a tiny model comes back through the platform and
loads with peft on another machine's copy of the base model."""

from __future__ import annotations

import io
import json
import tarfile
import warnings
from pathlib import Path

import httpx
import pytest

from tests.support.agent import agent_env, start_agent, wait_agent
from tests.support.backend import BackendProcess
from tests.support.e2e import job_json, make_user_and_key, submit
from tests.trainers.conftest import chat_rows, training_config
from training_agent.trainers import tiny

pytestmark = pytest.mark.e2e


def test_the_lora_adapter_comes_back_and_loads_with_peft(
    backend: BackendProcess, tmp_path: Path
) -> None:
    tiny_model = tiny.build(tmp_path / "model")
    data = tmp_path / "chat.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in chat_rows(12)), encoding="utf-8")
    config = training_config(
        tiny_model, "uploads/chat.jsonl", use_lora=True, lora_config={"r": 4}, batch_size=6
    )
    key = make_user_and_key(backend, "alice")
    job_id = submit(backend, tmp_path, "alice", config, dataset=data)
    # The model is a local folder: the owner lets jobs read it (data_dirs).
    env = agent_env(
        tmp_path / "agent",
        backend_url=backend.url,
        api_key=key,
        TRAINING_AGENT_DATA_DIRS=str(tiny_model),
    )

    code, output = wait_agent(start_agent(env, "--max-jobs", "1"), timeout_s=180)

    assert code == 0, output
    shown = job_json(backend, job_id)
    assert shown["job"]["status"] == "completed", shown
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=backend.url, headers=headers, timeout=60) as http:
        listed = http.get(f"/api/training/jobs/{job_id}/artifacts").json()["artifacts"]
        [adapter] = [item for item in listed if item["kind"] == "adapter"]
        assert adapter["name"] == "final_adapter.tar" and adapter["complete"]
        archive = http.get(f"/api/training/jobs/{job_id}/artifacts/{adapter['id']}").content
    [reported] = shown["job"]["outputs"]
    assert reported["artifact_id"] == adapter["id"] and reported["kind"] == "adapter"

    elsewhere = tmp_path / "downloaded"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(elsewhere, filter="data")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    with warnings.catch_warnings():  # peft 0.21 asks transformers a deprecated question
        warnings.simplefilter("ignore", FutureWarning)
        loaded = PeftModel.from_pretrained(base, str(elsewhere / "final_adapter"))
    assert getattr(loaded.peft_config["default"], "r", None) == 4
