"""What to run for a job's config: the argv and the job's own environment overrides.

A config selects how the job runs (docs/protocol.md, "The trainer process"):

- ``{"type": "command", "command": [argv...], "env": {...}}`` runs any program, only when
  the agent allows command jobs: a stolen API key must not mean remote code execution
  on every GPU machine.
- ``{"type": "demo", ...}`` runs the shipped demo trainer; it runs only our own code, so
  it is always allowed.
- a FineTune Lab ``TrainingConfig`` (``model`` / ``training`` keys) runs the built-in
  Hugging Face trainer under ``training_python`` (default: the agent's interpreter), by
  the path of ``trainers/hf_entry.py`` (by module name from the executable);
  when that interpreter cannot import torch, the trainer fails the job naming
  ``training-agent runtime setup``.

Every refusal is a ``JobConfigError`` whose message tells the user what to change.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training_agent.errors import JobConfigError

COMMANDS_DISABLED = (
    "command jobs are disabled on this agent; set allow_command_jobs = true in config.toml "
    "or TRAINING_AGENT_ALLOW_COMMAND_JOBS=1 to run them"
)
RUNTIME_MISSING = (
    "the training runtime {python} does not exist; run `training-agent runtime setup` "
    "or set training_python in config.toml to a Python with torch and transformers"
)
FROZEN_WITHOUT_RUNTIME = (
    "this agent is the standalone executable, which has no Python to run the built-in "
    "trainers with; set training_python in config.toml to a Python that has training-agent "
    "installed (with the train extra for Hugging Face jobs)"
)
UNKNOWN_CONFIG = (
    'unknown job config: expected a FineTune Lab TrainingConfig or {"type": "command"|"demo", ...}'
)
DEMO_MODULE = "training_agent.trainers.demo"
HF_MODULE = "training_agent.trainers.hf"
# Run by path, not with -m: a training_python without this package still finds it.
HF_ENTRY = Path(__file__).resolve().parent.parent / "trainers" / "hf_entry.py"


@dataclass(frozen=True)
class LaunchPlan:
    """How to start a job: the program with its arguments, and env vars the job sets."""

    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


def plan_launch(
    config: object,
    *,
    config_file: Path,
    allow_command_jobs: bool,
    training_python: str | None = None,
) -> LaunchPlan:
    """The launch plan for ``config``; raises ``JobConfigError`` when it cannot run here.

    ``config_file`` is where the job's config will be written for the trainer to read;
    ``training_python`` runs the Hugging Face trainer (None: this interpreter).
    """
    if not isinstance(config, dict):
        raise JobConfigError(UNKNOWN_CONFIG)
    kind = config.get("type")
    if kind == "command":
        if not allow_command_jobs:
            raise JobConfigError(COMMANDS_DISABLED)
        return LaunchPlan(argv=_command(config), env=_command_env(config))
    if kind == "demo":  # pure Python: this interpreter, unless this is no interpreter
        python = _trainer_python(training_python if _frozen() else None)
        return LaunchPlan(argv=(python, "-m", DEMO_MODULE, "--config", str(config_file)))
    if kind is None and ("model" in config or "training" in config):
        python = _trainer_python(training_python)
        if not Path(python).is_file():
            raise JobConfigError(RUNTIME_MISSING.format(python=python))
        # The executable carries no trainer files to point at: its
        # training_python must have the package, so the module is run by name.
        entry = ("-m", HF_MODULE) if _frozen() else (str(HF_ENTRY),)
        return LaunchPlan(argv=(python, *entry, "--config", str(config_file)))
    if kind is not None:
        raise JobConfigError(f"{UNKNOWN_CONFIG}; got type {str(kind)[:50]!r}")
    raise JobConfigError(UNKNOWN_CONFIG)


def _trainer_python(training_python: str | None) -> str:
    """The Python that runs a built-in trainer: ``training_python``, else this one.

    The executable is no Python (and carries no trainers): it needs the setting.
    """
    if training_python:
        return training_python
    if _frozen():
        raise JobConfigError(FROZEN_WITHOUT_RUNTIME)
    return sys.executable


def _frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def _command(config: dict[str, Any]) -> tuple[str, ...]:
    command = config.get("command")
    if isinstance(command, str):
        raise JobConfigError(
            'the "command" of a command job must be a list of strings, '
            'like ["python", "train.py"], not one string'
        )
    if not isinstance(command, list) or not command:
        raise JobConfigError(
            'a command job needs "command": a non-empty list of strings '
            "(the program and its arguments)"
        )
    for index, arg in enumerate(command):
        if not isinstance(arg, str) or "\0" in arg:
            raise JobConfigError(
                f'item {index} of the "command" of a command job must be a string '
                f"without NUL characters, not {_describe(arg)}"
            )
    return tuple(command)


def _command_env(config: dict[str, Any]) -> dict[str, str]:
    env = config.get("env", {})
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise JobConfigError('the "env" of a command job must be an object of names to strings')
    for name, value in env.items():
        if not name or "=" in name or "\0" in name:
            raise JobConfigError(f'the "env" of a command job has an invalid name: {name!r}')
        if not isinstance(value, str) or "\0" in value:
            raise JobConfigError(
                f'the "env" value of {name} in a command job must be a string '
                f"without NUL characters, not {_describe(value)}"
            )
    return dict(env)


def _describe(value: object) -> str:
    """A value's kind for an error message; never the value, which may be a secret."""
    return "a string with a NUL character" if isinstance(value, str) else type(value).__name__
