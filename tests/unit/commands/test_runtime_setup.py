"""`training-agent runtime setup`: the managed venv, its pins and the recorded setting."""

from __future__ import annotations

import subprocess
import tomllib
from collections.abc import Sequence
from pathlib import Path

import pytest

from training_agent.commands.runtime_setup import CUDA_PINS, PINS, setup_runtime, wants_cuda
from training_agent.config import load_settings
from training_agent.paths import AgentPaths

ROOT = Path(__file__).resolve().parents[3]


def test_the_pins_are_the_train_extras() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert tuple(project["optional-dependencies"]["train"]) == PINS


def test_setup_installs_the_pins_links_the_agent_and_records_the_python(tmp_path: Path) -> None:
    paths = AgentPaths.under(tmp_path)
    paths.config_dir.mkdir(parents=True)
    paths.config_file.write_text('backend_url = "http://127.0.0.1:9"\n')
    calls: list[list[str]] = []

    def run(argv: Sequence[str]) -> int:
        calls.append(list(argv))
        return 0

    assert setup_runtime(paths, cuda="cpu", run=run) == 0
    python = paths.data_dir / "runtime" / "bin" / "python"
    assert calls == [[str(python), "-m", "pip", "install", "--disable-pip-version-check", *PINS]]
    settings = load_settings(config_file=paths.config_file)
    assert settings.training_python == str(python)
    assert str(settings.backend_url).startswith("http://127.0.0.1:9")
    imported = subprocess.run(
        [str(python), "-c", "import training_agent.trainers.hf_config as m; print(m.__name__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.strip() == "training_agent.trainers.hf_config"

    assert setup_runtime(paths, cuda="cu124", run=run) == 0  # again: updates in place
    assert calls[-1][-len(CUDA_PINS) :] == list(CUDA_PINS)
    assert paths.config_file.read_text().count("training_python") == 1


def test_a_failed_install_says_to_run_it_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = AgentPaths.under(tmp_path)
    assert setup_runtime(paths, cuda="cpu", run=lambda argv: 1) == 1
    assert "run `training-agent runtime setup` again" in capsys.readouterr().err
    assert not paths.config_file.exists()


def test_cuda_choices() -> None:
    assert wants_cuda("auto", which=lambda name: "/usr/bin/nvidia-smi") is True
    assert wants_cuda("auto", which=lambda name: None) is False
    assert wants_cuda("cpu") is False and wants_cuda("cu121") is True
    with pytest.raises(ValueError, match="--cuda must be auto, cpu or cu12x"):
        wants_cuda("rocm")
