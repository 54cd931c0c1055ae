"""Fixtures for the Hugging Face trainer's tests: a tiny random-weights model, built once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from training_agent.job_policy import POLICY_ENV, JobPolicy
from training_agent.trainers import tiny


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` run only where CUDA is present; elsewhere they are deselected
    (not skipped: a CPU machine, CI included, has nothing missing for them)."""
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu or cuda_available():
        return
    config.hook.pytest_deselected(items=gpu)
    items[:] = [item for item in items if not item.get_closest_marker("gpu")]


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with a character tokenizer, saved to a directory."""
    return tiny.build(tmp_path_factory.mktemp("tiny") / "model")


def chat_rows(count: int) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"say hi {i}"},
                {"role": "assistant", "content": f"hi there number {i}"},
            ]
        }
        for i in range(count)
    ]


def training_config(model: Path, dataset: Path | str, **training: Any) -> dict[str, Any]:
    return {
        "model": {"name": str(model)},
        "tokenizer": {"name": str(model)},
        "training": {
            "method": "sft",
            "num_epochs": 1,
            "batch_size": 4,
            "learning_rate": 0.01,
            "logging_steps": 1,
            "max_length": 64,
            **training,
        },
        "data": {},
        "dataset_path": str(dataset),
    }


@dataclass
class TrainerRun:
    returncode: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]]
    job_dir: Path

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]


RunTrainer = Callable[..., TrainerRun]


def start_trainer(
    config: dict[str, Any], job_dir: Path, policy_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], Path]:
    job_dir.mkdir(parents=True, exist_ok=True)
    config_file = job_dir / "config.json"
    config_file.write_text(json.dumps(config), encoding="utf-8")
    events = job_dir / "events.jsonl"
    env = {
        **os.environ,
        "TRAINING_AGENT_JOB_DIR": str(job_dir),
        "TRAINING_AGENT_EVENTS_FILE": str(events),
        # These tests play an owner who lets jobs read every folder (data_dirs); a
        # config that sets its own policy (tests of the policy) keeps it.
        POLICY_ENV: JobPolicy(data_dirs=(os.sep,)).to_env(),
        "HF_HUB_OFFLINE": "1",
        **(policy_env or {}),
    }
    with (job_dir / "stdout.txt").open("w") as out, (job_dir / "stderr.txt").open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "training_agent.trainers.hf", "--config", str(config_file)],
            cwd=job_dir,
            env=env,
            stdout=out,
            stderr=err,
            text=True,
        )
    return process, events


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def run_trainer(tmp_path: Path) -> RunTrainer:
    """Runs the trainer on a config in a fresh job dir and collects what it reported."""
    counter = iter(range(1000))

    def run(config: dict[str, Any], policy: JobPolicy | None = None) -> TrainerRun:
        job_dir = tmp_path / f"job{next(counter)}"
        given = {POLICY_ENV: policy.to_env()} if policy is not None else None
        process, events = start_trainer(config, job_dir, given)
        returncode = process.wait(timeout=110)
        return TrainerRun(
            returncode,
            (job_dir / "stdout.txt").read_text(),
            (job_dir / "stderr.txt").read_text(),
            read_events(events),
            job_dir,
        )

    return run


DATA = Path(__file__).parent / "data"


@pytest.fixture
def train_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> RunTrainer:
    """Runs the trainer on a config inside this process (no interpreter start, no imports
    to repeat: seconds instead of tens of seconds) and collects what it reported."""
    import signal
    import warnings

    from training_agent.trainers import hf, hf_config

    counter = iter(range(1000))
    for name, value in {**hf.QUIET_ENV, "HF_HUB_OFFLINE": "1"}.items():
        monkeypatch.setenv(name, value)

    def run(config: dict[str, Any]) -> TrainerRun:
        job_dir = tmp_path / f"job{next(counter)}"
        job_dir.mkdir()
        events = job_dir / "events.jsonl"
        monkeypatch.setenv("TRAINING_AGENT_EVENTS_FILE", str(events))
        monkeypatch.chdir(job_dir)
        sigterm = signal.getsignal(signal.SIGTERM)
        try:
            settings, _ = hf_config.parse(config)
            with warnings.catch_warnings():
                # the libraries' own deprecation notices are theirs to fix, not a failure here
                warnings.simplefilter("ignore")
                code = hf.run(settings, job_dir)
        finally:
            signal.signal(signal.SIGTERM, sigterm)
        out = capsys.readouterr()
        return TrainerRun(code, out.out, out.err, read_events(events), job_dir)

    return run


def series(run: TrainerRun, name: str) -> list[float]:
    """The values of ``name`` (a platform key or an extra series) over the run's steps."""
    values = []
    for point in run.of("metric"):
        value = point.get(name, point.get("extra", {}).get(name))
        if value is not None:
            values.append(float(value))
    return values
