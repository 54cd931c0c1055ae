"""The training methods of the built-in trainer, one module each, on TRL's trainers.

| method | module | trainer |
|---|---|---|
| ``sft`` | ``causal`` | ``transformers.Trainer`` on our tokenization (loss masking, packing) |
| ``cpt`` | ``causal`` | the same on raw text cut into blocks (packing on by default) |
| ``dpo`` | ``preference`` | ``trl.DPOTrainer`` |
| ``orpo`` | ``preference`` | ``trl.experimental.orpo.ORPOTrainer`` |
| ``kto`` | ``preference`` | ``trl.KTOTrainer`` |
| ``reward`` | ``reward`` | ``trl.RewardTrainer`` (a one-output sequence classifier) |
| ``rlhf`` | ``rlhf`` | ``trl.RLOOTrainer`` against ``training.reward_model`` |

``get(name)`` imports a method's module only when it runs (TRL is heavy); the row checks
(``rows.py``) and the option parsing (``options.py``) import neither torch nor TRL.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training_agent.trainers import hf_config

_MODULES = {
    "sft": "causal",
    "cpt": "causal",
    "dpo": "preference",
    "orpo": "preference",
    "kto": "preference",
    "reward": "reward",
    "rlhf": "rlhf",
}


class MethodError(ValueError):
    """The config asks a method for something it cannot do; the message says what to change."""


@dataclass
class Job:
    """Everything a method needs to build its trainer."""

    settings: hf_config.HfSettings
    job_dir: Path
    cuda: bool
    bf16: bool
    fp16: bool
    tokenizer: Any
    train_rows: list[dict[str, Any]]
    eval_rows: list[dict[str, Any]]
    callbacks: list[Any] = field(default_factory=list)

    @property
    def method(self) -> str:
        return self.settings.method


Build = Callable[[Job], Any]


def builder(method: str) -> Build:
    """The function that builds ``method``'s trainer (a ``transformers.Trainer``)."""
    module = importlib.import_module(f"training_agent.trainers.methods.{_MODULES[method]}")
    build: Build = module.build
    return build
