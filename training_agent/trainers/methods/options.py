"""The config keys each training method reads beyond the common ones, parsed without torch.

``parse_options(method, training)`` returns a ``MethodOptions`` with TRL's defaults where
a key is absent, and raises ``ValueError`` with one sentence naming the key when a value
is of the wrong kind or a method misses a key it cannot run without (``rlhf`` without
``training.reward_model``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

METHODS = ("sft", "cpt", "dpo", "orpo", "kto", "reward", "rlhf")

# Training keys read by some method (hf_config lists the common ones).
OPTION_KEYS = frozenset(
    {
        "beta",
        "max_prompt_length",
        "max_completion_length",
        "desirable_weight",
        "undesirable_weight",
        "reward_model",
        "num_generations",
        "ppo_epochs",
        "clip_range",
        "temperature",
    }
)
# The platform's PPO keys that mean nothing to RLOO (no value model, no entropy bonus).
PPO_ONLY_KEYS = frozenset({"clip_range_value", "vf_coef", "entropy_coef"})
# beta's default per method: TRL's (DPO, KTO: KL strength; ORPO: lambda; RLOO: KL coef).
DEFAULT_BETA = {"dpo": 0.1, "orpo": 0.1, "kto": 0.1, "rlhf": 0.05}
REWARD_MODEL_MISSING = (
    "method rlhf needs a reward model and the config has no training.reward_model: set it "
    "to the directory or hub id of a sequence-classification model (train one with method "
    "reward)"
)


@dataclass(frozen=True)
class MethodOptions:
    """Method-specific settings; each method reads only its own."""

    beta: float = 0.1
    max_prompt_length: int | None = None
    max_completion_length: int | None = None
    desirable_weight: float = 1.0
    undesirable_weight: float = 1.0
    reward_model: str | None = None
    num_generations: int | None = None
    ppo_epochs: int = 1
    clip_range: float = 0.2
    temperature: float = 1.0


def unknown_method(method: str) -> str:
    """The sentence for a ``training.method`` no trainer here runs."""
    return f"training.method {method!r} is not a method this trainer runs; use one of " + (
        ", ".join(METHODS)
    )


def parse_options(method: str, training: dict[str, Any]) -> MethodOptions:
    """The options of ``method`` from the config's ``training`` section."""
    if method not in METHODS:
        raise ValueError(unknown_method(method))
    reward_model = training.get("reward_model")
    if method == "rlhf" and (not isinstance(reward_model, str) or not reward_model.strip()):
        raise ValueError(REWARD_MODEL_MISSING)
    return MethodOptions(
        beta=_positive(training, "beta", DEFAULT_BETA.get(method, 0.1)),
        max_prompt_length=_opt_count(training, "max_prompt_length"),
        max_completion_length=_opt_count(training, "max_completion_length"),
        desirable_weight=_positive(training, "desirable_weight", 1.0),
        undesirable_weight=_positive(training, "undesirable_weight", 1.0),
        reward_model=reward_model.strip() if isinstance(reward_model, str) else None,
        num_generations=_opt_count(training, "num_generations", minimum=2),
        ppo_epochs=_opt_count(training, "ppo_epochs") or 1,
        clip_range=_positive(training, "clip_range", 0.2),
        temperature=_positive(training, "temperature", 1.0),
    )


def _positive(section: dict[str, Any], key: str, default: float) -> float:
    value = section.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"training.{key} must be a number above 0")
    return float(value)


def _opt_count(section: dict[str, Any], key: str, *, minimum: int = 1) -> int | None:
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"training.{key} must be an integer of at least {minimum}")
    return value
