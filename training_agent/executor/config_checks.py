"""A TrainingConfig checked against the owner's policy before its trainer starts.

The first of two checks (the trainer repeats them, ``trainers.policy``): every local path
the config names must be inside the job's work folder, the dataset cache or
``data_dirs``, and a dataset URL must be http(s) to public addresses (``url_guard``).
A refusal is a ``JobConfigError`` whose sentence names the setting that would allow it;
it never says whether a refused path exists. Whether a model needs its own code only
the trainer can tell (it has transformers); the agent hands it the policy instead
(``job_policy.POLICY_ENV``), so the job config never decides.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from training_agent import url_guard
from training_agent.errors import JobConfigError
from training_agent.job_policy import JobPolicy, PolicyError, config_paths, is_url


def is_training_config(config: Mapping[str, Any]) -> bool:
    """A FineTune Lab TrainingConfig (run by the built-in trainer), not a command or demo."""
    return "type" not in config and ("model" in config or "training" in config)


async def check_config(
    config: Mapping[str, Any], *, job_dir: Path, cache_dir: Path | None, policy: JobPolicy
) -> None:
    """Raise ``JobConfigError`` when ``config`` reaches outside what ``policy`` allows."""
    if not is_training_config(config):
        return
    roots = policy.roots(job_dir, cache_dir)
    try:
        for what, value in config_paths(config, job_dir):
            policy.check_path(what, value, base=job_dir, roots=roots)
    except PolicyError as exc:
        raise JobConfigError(str(exc)) from exc
    dataset = config.get("dataset_path")
    if isinstance(dataset, str) and is_url(dataset):
        try:  # resolving a name blocks: not on the event loop
            await asyncio.to_thread(
                url_guard.check_url, dataset, allow_private=policy.allow_private_urls
            )
        except url_guard.UrlRefused as exc:
            raise JobConfigError(str(exc)) from exc
