"""The demo trainer: really learns, reports like a user script, honours SIGTERM."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.executor import RecordingSink, wait_until
from training_agent.jobs import JobStatus
from training_agent.trainers.demo import DemoConfig

from .conftest import MakeRunner


async def test_demo_lowers_the_loss_and_reports_its_model(
    make_runner: MakeRunner, sink: RecordingSink, jobs_dir: Path
) -> None:
    outcome = await make_runner({"type": "demo", "epochs": 2}).run()
    assert outcome.status is JobStatus.COMPLETED, sink.lines
    model = jobs_dir / "job-1" / "model.json"
    assert outcome.outputs == (str(model),)
    assert len(json.loads(model.read_text())["weights"]) == 8
    assert sink.progress_calls == [(100, 2.0)]
    steps = [point["step"] for point in sink.metrics]
    assert steps == list(range(1, 101))
    losses = [point["train_loss"] for point in sink.metrics]
    assert losses[-1] < losses[0] * 0.6
    eval_losses = [point["eval_loss"] for point in sink.metrics if "eval_loss" in point]
    assert len(eval_losses) == 2 and eval_losses[1] < eval_losses[0]
    assert any(line.startswith("epoch 2: eval_loss=") for line in sink.lines)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_demo_checkpoints_and_stops_on_sigterm(
    make_runner: MakeRunner, sink: RecordingSink
) -> None:
    config = {"type": "demo", "epochs": 100, "step_delay_s": 0.02}
    runner = make_runner(config, cancel_grace_s=10)
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: len(sink.metrics) >= 3)
    runner.request_cancel("cancelled by the user")
    outcome = await task
    assert outcome.status is JobStatus.CANCELLED
    assert outcome.exit_code == 143
    assert len(outcome.outputs) == 1 and "checkpoint-" in outcome.outputs[0]
    assert json.loads(Path(outcome.outputs[0]).read_text())["step"] >= 3
    assert any(line.startswith("stopping: SIGTERM received") for line in sink.lines)


def test_an_invalid_config_is_one_sentence_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"type": "demo", "learning_rate": -1}))
    result = subprocess.run(
        [sys.executable, "-m", "training_agent.trainers.demo", "--config", str(config)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "demo trainer: invalid config: learning_rate must be above 0 and at most 100\n"
    )
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("raw", "sentence"),
    [
        ({"epoch": 3}, "unknown demo config key 'epoch'; known: samples, features, epochs"),
        ({"epochs": 1.5}, "epochs must be an integer"),
        ({"epochs": True}, "epochs must be an integer"),
        ({"learning_rate": "0.1"}, "learning_rate must be a number"),
        ({"samples": 5}, "samples must be at least 10"),
        ({"eval_fraction": 1}, "eval_fraction must be between 0 and 1"),
    ],
)
def test_config_validation(raw: dict[str, object], sentence: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(sentence)}"):
        DemoConfig.from_mapping(raw)


def test_defaults_and_the_type_key_are_accepted() -> None:
    assert DemoConfig.from_mapping({"type": "demo", "learning_rate": 1}) == DemoConfig(
        learning_rate=1
    )
