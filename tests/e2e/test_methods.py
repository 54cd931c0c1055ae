"""Every training method as a FineTune Lab TrainingConfig, run by the real agent with the
built-in trainer against the real backend: the jobs complete, their metrics land, a LoRA
adapter comes back through the platform and loads with peft, and a job that names a
checkpoint continues from it.

One backend and one agent run serve the module: the agent takes the jobs one after the
other (``--max-jobs``), so the cost of starting them is paid once. A job serves every
check it can: the dpo job's checkpoint is the one the resumed job names, and the cpt job
comes last, after the two jobs a user got wrong.
"""

from __future__ import annotations

import io
import json
import re
import string
import tarfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.agent import agent_env, start_agent, wait_agent
from tests.support.backend import BackendProcess, start_backend
from tests.support.e2e import job_json, make_user_and_key, submit
from tests.trainers.conftest import DATA, training_config
from training_agent.trainers import tiny

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

DATASETS = {
    "sft": "chat.jsonl",  # written by sft_rows: the chosen side of each chat pair
    "cpt": "orchard.txt",
    "dpo": "preference.jsonl",
    "orpo": "preference.jsonl",
    "kto": "kto.jsonl",
    "reward": "preference.jsonl",
    "rlhf": "prompts.jsonl",
}

# What each method reports beyond the platform's keys (TRL's names): extra series.
EXTRAS = {
    "dpo": {"rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected"},
    "orpo": {"rewards/margins", "log_odds_ratio", "nll_loss"},
    "kto": {"rewards/margins", "kl"},
    "reward": {"accuracy", "margin"},
    "rlhf": {"reward", "kl"},
}


@dataclass
class Run:
    backend: BackendProcess
    key: str
    jobs: dict[str, str]
    home: Path
    output: str

    def metrics(self, job_id: str) -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.backend.url, headers=headers) as http:
            points: list[dict[str, Any]] = http.get(f"/api/training/local/{job_id}/metrics").json()[
                "metrics"
            ]
        return points


def method_config(root: Path, method: str) -> dict[str, Any]:
    model = root / "model"
    training: dict[str, Any] = {"method": method, "batch_size": 8, "learning_rate": 0.01}
    if method == "sft":  # one method through LoRA end to end, its adapter back to the owner
        training.update(use_lora=True, lora_config={"r": 4})
    if method == "rlhf":
        scorer = tiny.build_scorer(root / "scorer", liked=string.ascii_lowercase)
        training.update(reward_model=str(scorer), max_completion_length=1, num_epochs=1)
    # The dataset travels through the backend: the agent replaces this path with its copy.
    return training_config(model, f"uploads/{DATASETS[method]}", **training)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("methods")
    tiny.build(root / "model")
    with start_backend(root / "backend") as backend:
        key = make_user_and_key(backend, "alice")
        jobs: dict[str, str] = {}
        home = root / "agent"
        for method, dataset in DATASETS.items():
            if method == "cpt":  # submitted last: it shows the agent goes on after bad jobs
                continue
            data = sft_rows(root) if method == "sft" else DATA / dataset
            config = method_config(root, method)
            if method == "dpo":  # also the first job of the resume: a checkpoint at step 2
                config["training"] = {**config["training"], "save_steps": 2}
            jobs[method] = submit(backend, root, "alice", config, dataset=data)
        # The resumed job: dpo again, from the checkpoint the dpo job saved at step 2.
        resumed = method_config(root, "dpo")
        checkpoint = home / "data" / "jobs" / jobs["dpo"] / "checkpoints" / "checkpoint-2"
        resumed["training"] = {**resumed["training"], "checkpoint_resume": str(checkpoint)}
        jobs["resumed"] = submit(backend, root, "alice", resumed, dataset=DATA / DATASETS["dpo"])
        # Two jobs a user got wrong, queued before the last good one (cpt): each fails
        # with its sentence and the agent goes on.
        misfit = method_config(root, "dpo")
        jobs["misfit"] = submit(backend, root, "alice", misfit, dataset=DATA / "kto.jsonl")
        no_scorer = method_config(root, "rlhf")
        del no_scorer["training"]["reward_model"]
        jobs["no_scorer"] = submit(
            backend, root, "alice", no_scorer, dataset=DATA / "prompts.jsonl"
        )
        jobs["cpt"] = submit(
            backend, root, "alice", method_config(root, "cpt"), dataset=DATA / "orchard.txt"
        )
        # The owner lets jobs read the local model and reward model folders and the
        # first job's checkpoint (data_dirs): all of them live under this test's root.
        env = agent_env(
            home, backend_url=backend.url, api_key=key, TRAINING_AGENT_DATA_DIRS=str(root)
        )
        code, output = wait_agent(start_agent(env, "--max-jobs", str(len(jobs))), timeout_s=840)
        assert code == 0, output
        yield Run(backend, key, jobs, home, output)


def sft_rows(root: Path) -> Path:
    lines = (DATA / "preference_chat.jsonl").read_text().splitlines()
    chats = [{"messages": json.loads(line)["chosen"]} for line in lines if line]
    path = root / "chat.jsonl"
    path.write_text("\n".join(json.dumps(chat) for chat in chats))
    return path


@pytest.mark.parametrize("method", list(DATASETS))
def test_each_method_completes_and_its_metrics_land(run: Run, method: str) -> None:
    job_id = run.jobs[method]
    shown = job_json(run.backend, job_id)
    assert shown["job"]["status"] == "completed", shown
    points = run.metrics(job_id)
    steps = [p["step"] for p in points]
    assert steps == list(range(1, len(steps) + 1)) and steps, points
    assert all(p.get("train_loss") is not None for p in points), points
    names = {name for p in points for name in (p.get("extra") or {})}
    assert names >= EXTRAS.get(method, set()), names
    if method == "dpo":  # what the method optimises, as the backend holds it
        margins = [p["extra"]["rewards/margins"] for p in points]
        assert margins[0] == 0.0 and margins[-1] > margins[0], margins


def test_the_lora_adapter_comes_back_and_loads_with_peft(run: Run, tmp_path: Path) -> None:
    job_id = run.jobs["sft"]
    headers = {"Authorization": f"Bearer {run.key}"}
    with httpx.Client(base_url=run.backend.url, headers=headers, timeout=60) as http:
        listed = http.get(f"/api/training/jobs/{job_id}/artifacts").json()["artifacts"]
        [adapter] = [item for item in listed if item["kind"] == "adapter"]
        assert adapter["name"] == "final_adapter.tar" and adapter["complete"]
        archive = http.get(f"/api/training/jobs/{job_id}/artifacts/{adapter['id']}").content
    [reported] = job_json(run.backend, job_id)["job"]["outputs"]
    assert reported["artifact_id"] == adapter["id"] and reported["kind"] == "adapter"

    elsewhere = tmp_path / "downloaded"  # another machine's copy of the base model
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(elsewhere, filter="data")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny.build(tmp_path / "model")))
    with warnings.catch_warnings():  # peft 0.21 asks transformers a deprecated question
        warnings.simplefilter("ignore", FutureWarning)
        loaded = PeftModel.from_pretrained(base, str(elsewhere / "final_adapter"))
    assert getattr(loaded.peft_config["default"], "r", None) == 4


def test_a_job_resumes_from_the_checkpoint_it_names(run: Run) -> None:
    first, resumed = run.metrics(run.jobs["dpo"]), run.metrics(run.jobs["resumed"])
    assert [p["step"] for p in first] == [1, 2, 3, 4]
    assert [p["step"] for p in resumed] == [3, 4]


def test_jobs_a_user_got_wrong_fail_with_one_sentence_and_the_agent_goes_on(run: Run) -> None:
    misfit = job_json(run.backend, run.jobs["misfit"])["job"]
    assert misfit["status"] == "failed"
    # the trainer names the file it read: the agent's downloaded copy
    assert re.fullmatch(
        r"exit code 2: method dpo needs rows with columns prompt, chosen and rejected \(prompt "
        r"may be left out when chosen and rejected hold the whole conversation\); the dataset "
        r"/\S+/kto\.jsonl has columns \['completion', 'label', 'prompt'\]",
        misfit["error"],
    ), misfit["error"]
    no_scorer = job_json(run.backend, run.jobs["no_scorer"])["job"]
    assert no_scorer["status"] == "failed"
    assert no_scorer["error"] == (
        "exit code 2: invalid training config: method rlhf needs a reward model and the "
        "config has no training.reward_model: set it to the directory or hub id of a "
        "sequence-classification model (train one with method reward)"
    ), no_scorer["error"]
    assert job_json(run.backend, run.jobs["cpt"])["job"]["status"] == "completed"
