"""In the executable (no Python, no trainers), built-in trainer jobs need
``training_python``; without it the job fails with one sentence saying so."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from training_agent.errors import JobConfigError
from training_agent.executor.plan import DEMO_MODULE, HF_MODULE, plan_launch

HF_CONFIG = {"model": {"name": "tiny"}, "training": {}}


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)


@pytest.mark.parametrize("config", [{"type": "demo"}, HF_CONFIG])
def test_without_training_python_the_job_says_what_to_set(
    frozen: None, config: dict[str, object], tmp_path: Path
) -> None:
    with pytest.raises(JobConfigError, match=r"set training_python in config\.toml"):
        plan_launch(config, config_file=tmp_path / "c.json", allow_command_jobs=False)


@pytest.mark.parametrize(
    ("config", "module"), [({"type": "demo"}, DEMO_MODULE), (HF_CONFIG, HF_MODULE)]
)
def test_with_training_python_the_trainer_runs_there(
    frozen: None, config: dict[str, object], module: str, tmp_path: Path
) -> None:
    python = tmp_path / "python"
    python.write_text("")
    plan = plan_launch(
        config,
        config_file=tmp_path / "c.json",
        allow_command_jobs=False,
        training_python=str(python),
    )
    assert plan.argv[:3] == (str(python), "-m", module)


def test_from_source_the_demo_keeps_this_interpreter(tmp_path: Path) -> None:
    plan = plan_launch(
        {"type": "demo"},
        config_file=tmp_path / "c.json",
        allow_command_jobs=False,
        training_python="/elsewhere/python",
    )
    assert plan.argv[0] == sys.executable
