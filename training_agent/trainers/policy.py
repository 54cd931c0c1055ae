"""The owner's policy, checked again inside the trainer before anything is loaded.

The agent checked the config already (``executor.config_checks``); this is the second
line, for a trainer started some other way and for what only the trainer can know:
whether a model that asked for ``trust_remote_code`` loads without it.

``enforce(settings, job_dir)`` returns the settings to train with: ``trust_remote_code``
is what the owner allows (``job_policy.JobPolicy.trusts``), never what the job asked
for. Asked for and refused: a model transformers supports natively trains, with one
line in the job log saying the flag was ignored; one that needs its own code fails with
``PolicyError`` naming the setting, and its code is never imported. Every local path
the config names must be inside the allowed folders. Runs inside the trainer process.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from training_agent import url_guard
from training_agent.job_policy import (
    REMOTE_CODE_IGNORED,
    REMOTE_CODE_REFUSED,
    JobPolicy,
    PolicyError,
    is_local,
    is_url,
)
from training_agent.trainers.hf_config import HfSettings

CACHE_ENV = "TRAINING_AGENT_DATASET_CACHE"


def enforce(
    settings: HfSettings, job_dir: Path, environ: Mapping[str, str] | None = None
) -> HfSettings:
    """``settings`` within the owner's policy; raises ``PolicyError`` with one sentence."""
    env = os.environ if environ is None else environ
    policy = JobPolicy.from_env(env)
    check_paths(settings, job_dir, policy, cache_dir=env.get(CACHE_ENV))
    if not settings.trust_remote_code:
        return settings
    tokenizer = settings.tokenizer_name or settings.model_name
    reward = settings.options.reward_model  # rlhf loads it with the same flag
    if all(policy.trusts(name) for name in (settings.model_name, tokenizer, reward) if name):
        return settings
    require_native(settings.model_name, tokenizer)
    print(REMOTE_CODE_IGNORED.format(name=settings.model_name))
    return dataclasses.replace(settings, trust_remote_code=False)


def check_paths(
    settings: HfSettings, job_dir: Path, policy: JobPolicy, *, cache_dir: str | None
) -> None:
    """Every local path of ``settings`` inside the allowed folders; the dataset URL's scheme."""
    base = Path.cwd()
    roots = policy.roots(job_dir, Path(cache_dir) if cache_dir else job_dir / "datasets")
    named = [("model.name", settings.model_name), ("tokenizer.name", settings.tokenizer_name)]
    named.append(("training.reward_model", settings.options.reward_model))
    for what, name in named:
        if name and is_local(name, base):
            policy.check_path(what, name, base=base, roots=roots)
    if is_url(settings.dataset_path):
        refused = url_guard.scheme_refused(settings.dataset_path)
        if refused is not None:
            raise PolicyError(refused)
    else:
        policy.check_path("dataset_path", settings.dataset_path, base=base, roots=roots)
    if settings.checkpoint_resume:
        resume = settings.checkpoint_resume
        policy.check_path("training.checkpoint_resume", resume, base=job_dir, roots=roots)


def require_native(model: str, tokenizer: str) -> None:
    """Raise ``PolicyError`` when ``model`` or ``tokenizer`` cannot load without its own
    code. Loads only with ``trust_remote_code=False``: their code is never imported."""
    from transformers import AutoConfig, AutoTokenizer

    for what, loader, name in (
        ("the model", AutoConfig, model),
        ("the tokenizer", AutoTokenizer, tokenizer),
    ):
        try:
            loader.from_pretrained(name, trust_remote_code=False)
        except ValueError as exc:
            if "trust_remote_code" in str(exc):
                raise PolicyError(REMOTE_CODE_REFUSED.format(what=what, name=name)) from exc
        except Exception:  # any other failure: the real load reports it in its words
            continue
