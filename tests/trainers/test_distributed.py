"""``training.distributed``: two ranks on the CPU (gloo) under torchrun, reporting as one
run, and the agent's kill ladder ending every rank."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.trainers.conftest import RunTrainer, chat_rows, read_events, training_config
from training_agent.executor.process import TRACKING_ENV, ChildProcess
from training_agent.job_policy import POLICY_ENV, JobPolicy
from training_agent.trainers import distributed

TWO_RANKS = {"strategy": "ddp", "num_gpus": 2}


def write_chat(path: Path, count: int) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in chat_rows(count)), encoding="utf-8")
    return path


def test_two_ranks_train_one_run_and_rank_zero_reports_it(
    tiny_model: Path, tmp_path: Path, run_trainer: RunTrainer
) -> None:
    data = write_chat(tmp_path / "chat.jsonl", 32)
    run = run_trainer(training_config(tiny_model, data, batch_size=4, distributed=TWO_RANKS))
    assert run.returncode == 0, run.stderr
    assert "distributed: starting 2 processes with torchrun" in run.stdout
    assert run.stdout.count("dataset: 32 training rows") == 2  # both ranks read it
    # 32 rows, 4 a rank, 2 ranks: 4 steps, each reported once
    assert run.of("progress") == [{"type": "progress", "total_steps": 4, "total_epochs": 1.0}]
    assert [m["step"] for m in run.of("metric")] == [1, 2, 3, 4]
    final = str(run.job_dir / "final_model")
    assert run.of("output") == [{"type": "output", "path": final, "kind": "model"}]


def test_a_rank_that_fails_gives_its_sentence_last(
    tiny_model: Path, tmp_path: Path, run_trainer: RunTrainer
) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"question": "q"}) + "\n")
    run = run_trainer(training_config(tiny_model, data, method="dpo", distributed=TWO_RANKS))
    assert run.returncode != 0
    assert run.stderr.strip().splitlines()[-1] == (
        "method dpo needs rows with columns prompt, chosen and rejected (prompt may be left "
        f"out when chosen and rejected hold the whole conversation); the dataset {data} has "
        "columns ['question']"
    )


async def test_the_agents_kill_ladder_ends_every_rank(tiny_model: Path, tmp_path: Path) -> None:
    data = write_chat(tmp_path / "chat.jsonl", 1000)  # 250 steps: still running at the stop
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    config = training_config(tiny_model, data, batch_size=2, distributed=TWO_RANKS)
    (job_dir / "config.json").write_text(json.dumps(config))
    events = job_dir / "events.jsonl"
    env = {**os.environ, "TRAINING_AGENT_JOB_DIR": str(job_dir), "HF_HUB_OFFLINE": "1"}
    env[POLICY_ENV] = JobPolicy(data_dirs=(os.sep,)).to_env()  # the tiny model's folder
    env["TRAINING_AGENT_EVENTS_FILE"] = str(events)
    lines: list[str] = []
    entry = Path(distributed.__file__).with_name("hf_entry.py")
    child = await ChildProcess.start(
        [sys.executable, str(entry), "--config", str(job_dir / "config.json")],
        cwd=job_dir,
        env=env,
        on_line=lambda stream, line: lines.append(line),
    )
    deadline = time.monotonic() + 110
    while not any(e["type"] == "metric" for e in read_events(events)):
        assert child.returncode is None, lines
        assert time.monotonic() < deadline, lines
        await asyncio.sleep(0.1)
    ranks = ranks_of(child.tracking_id)
    assert len(ranks) == 2, lines

    await child.stop(grace_s=60)

    assert not tracked(child.tracking_id)
    checkpoints = [e for e in read_events(events) if e["type"] == "checkpoint"]
    assert len(checkpoints) == 1, lines  # the ranks agreed on one step and saved it
    assert Path(checkpoints[0]["path"], "model.safetensors").exists()


def tracked(tracking_id: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            environ = proc.environ()
            if environ.get(TRACKING_ENV) == tracking_id and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def ranks_of(tracking_id: str) -> list[psutil.Process]:
    return [p for p in tracked(tracking_id) if distributed.RANK_ENV in p.environ()]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (False, None),
        (True, distributed.DistributedSettings(None)),
        ({"strategy": "ddp"}, distributed.DistributedSettings(None)),
        ({"strategy": "ddp", "num_gpus": 4}, distributed.DistributedSettings(4)),
        ({"strategy": "ddp", "num_gpus": 1}, None),
        ({"strategy": "none", "num_gpus": 4}, None),
    ],
)
def test_the_distributed_key(value: Any, expected: distributed.DistributedSettings | None) -> None:
    assert distributed.parse(value) == expected


def test_distributed_settings_that_cannot_run_say_why() -> None:
    with pytest.raises(ValueError, match=r"strategy 'fsdp' is not supported .* use ddp"):
        distributed.parse({"strategy": "fsdp"})
    with pytest.raises(ValueError, match="num_gpus must be an integer of at least 1"):
        distributed.parse({"num_gpus": 0})
    with pytest.raises(ValueError, match="asks for 4 GPUs and this job can use 2"):
        distributed.processes(distributed.DistributedSettings(4), 2)
    assert distributed.processes(distributed.DistributedSettings(None), 3) == 3
    assert distributed.processes(distributed.DistributedSettings(2), 0) == 2  # CPU ranks
