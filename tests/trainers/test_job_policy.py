"""The trainer keeps the owner's policy whatever the job config says: no model code runs
unless allowed, and no path outside the allowed folders is read. Real trainer processes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.trainers.conftest import RunTrainer, chat_rows, training_config
from training_agent.job_policy import JobPolicy

MODULE = """
from pathlib import Path

Path({marker!r}).write_text("the model's own code ran")

from transformers import PreTrainedTokenizerFast


class MarkerTokenizer(PreTrainedTokenizerFast):
    pass
"""


def with_own_code(tiny_model: Path, where: Path, *, native: bool = False) -> tuple[Path, Path]:
    """A copy of the tiny model whose tokenizer names its own class (``auto_map``) in a
    module that leaves a marker file when it is imported; the model and the marker."""
    model = shutil.copytree(tiny_model, where / "model")
    marker = where / "MARKER"
    (model / "marker_tokenizer.py").write_text(MODULE.format(marker=str(marker)))
    settings_file = model / "tokenizer_config.json"
    settings = json.loads(settings_file.read_text())
    settings["auto_map"] = {"AutoTokenizer": [None, "marker_tokenizer.MarkerTokenizer"]}
    settings["tokenizer_class"] = "PreTrainedTokenizerFast" if native else "MarkerTokenizer"
    settings_file.write_text(json.dumps(settings))
    return model, marker


def asking_for_code(model: Path, data: Path | str) -> dict[str, Any]:
    config = training_config(model, data, max_length=32, batch_size=4)
    config["model"] = {"name": str(model), "trust_remote_code": True}
    config["tokenizer"] = {"name": str(model), "trust_remote_code": True}
    return config


def chat(tmp_path: Path, rows: int = 8) -> Path:
    data = tmp_path / "data" / "chat.jsonl"
    data.parent.mkdir()
    data.write_text("\n".join(json.dumps(r) for r in chat_rows(rows)))
    return data


def test_model_code_never_runs_without_the_owners_leave(
    tiny_model: Path, tmp_path: Path, run_trainer: RunTrainer
) -> None:
    model, marker = with_own_code(tiny_model, tmp_path)
    data = chat(tmp_path)
    policy = JobPolicy(data_dirs=(str(tmp_path),))  # paths allowed; remote code not

    run = run_trainer(asking_for_code(model, data), policy)

    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.strip() == (
        f"the tokenizer {model} needs its own Python code (trust_remote_code), which this "
        "agent does not run for a job; the machine's owner can allow it with "
        "allow_remote_code = true (TRAINING_AGENT_ALLOW_REMOTE_CODE=1), or for this model "
        "only in trusted_model_sources"
    )
    assert not marker.exists()
    assert run.of("metric") == []

    # The owner can allow exactly this model (or everything, with allow_remote_code).
    trusted = JobPolicy(data_dirs=(str(tmp_path),), trusted_model_sources=(str(model),))
    run = run_trainer(asking_for_code(model, data), trusted)
    assert marker.exists(), run.stderr
    assert run.returncode == 0, run.stderr


def test_a_native_model_trains_with_the_flag_ignored_in_one_line(
    tiny_model: Path, tmp_path: Path, run_trainer: RunTrainer
) -> None:
    model, marker = with_own_code(tiny_model, tmp_path, native=True)
    policy = JobPolicy(data_dirs=(str(tmp_path),))

    run = run_trainer(asking_for_code(model, chat(tmp_path)), policy)

    assert run.returncode == 0, run.stderr
    ignored = [line for line in run.stdout.splitlines() if "trust_remote_code" in line]
    assert ignored == [
        "trust_remote_code in the job config was ignored (allow_remote_code is off on this "
        f"agent and {model} is not in trusted_model_sources): it loads with transformers' "
        "own code"
    ]
    assert not marker.exists() and run.of("metric")


@pytest.mark.parametrize("key", ["dataset_path", "model", "checkpoint_resume", "reward_model"])
def test_a_path_outside_the_allowed_folders_is_never_read(
    tiny_model: Path, tmp_path: Path, run_trainer: RunTrainer, key: str
) -> None:
    secret = tmp_path / "elsewhere" / "secret.jsonl"
    secret.parent.mkdir()
    secret.write_text(json.dumps({"text": "the owner's secret"}) + "\n")
    config = training_config(tiny_model, chat(tmp_path))
    value = str(secret) if key not in ("model", "reward_model") else str(secret.parent)
    if key == "model":
        config["model"] = {"name": value}
    elif key == "checkpoint_resume":
        config["training"]["checkpoint_resume"] = value
    elif key == "reward_model":
        config["training"].update(method="rlhf", reward_model=value)
    else:
        config[key] = value
    allowed = (str(tmp_path / "data"), str(tiny_model))

    run = run_trainer(config, JobPolicy(data_dirs=allowed))

    assert run.returncode == 2, run.stdout + run.stderr
    assert f"{value} is outside the folders this agent lets jobs read" in run.stderr
    assert "secret" not in (run.stdout + run.stderr).replace(value, "")
