"""What a job's config may make this machine do: the owner's policy, and its checks.

A job config is data, never code, unless the machine's owner says otherwise (see
docs/security.md). The owner's settings become a ``JobPolicy``; the agent checks a
TrainingConfig against it before the trainer starts (``executor.config_checks``), and
hands it to the trainer as JSON in ``$TRAINING_AGENT_JOB_POLICY``, which the trainer
checks again (``trainers.policy``). A job cannot set that variable (every
``TRAINING_AGENT_`` name is the agent's), and a trainer started without it gets the
strictest policy.

- ``trust_remote_code`` is honoured only with ``allow_remote_code``, or for sources in
  ``trusted_model_sources`` (ids, or prefixes ending in ``/``);
- a local path (a model or tokenizer folder, ``dataset_path``, ``checkpoint_resume``,
  an output folder) must resolve, symlinks followed, inside the job's work folder, the
  dataset cache or one of ``data_dirs``; the refusal never says whether it exists;
- a hub id (``org/name``) is not a path, unless that name exists in the work folder
  (transformers would read the folder then).

Standard library only: the trainer may run under another Python.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POLICY_ENV = "TRAINING_AGENT_JOB_POLICY"
DEFAULT_MAX_DOWNLOAD_BYTES = 50 * 10**9

# What transformers accepts as a hub repository id: "name" or "owner/name".
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")
_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:")

PATH_REFUSED = (
    "{what} {value} is outside the folders this agent lets jobs read (the job's work "
    "folder, the dataset cache and data_dirs); the machine's owner can add its folder "
    "to data_dirs (TRAINING_AGENT_DATA_DIRS) to allow it"
)
REMOTE_CODE_REFUSED = (
    "{what} {name} needs its own Python code (trust_remote_code), which this agent does "
    "not run for a job; the machine's owner can allow it with allow_remote_code = true "
    "(TRAINING_AGENT_ALLOW_REMOTE_CODE=1), or for this model only in trusted_model_sources"
)
REMOTE_CODE_IGNORED = (
    "trust_remote_code in the job config was ignored (allow_remote_code is off on this "
    "agent and {name} is not in trusted_model_sources): it loads with transformers' own code"
)


class PolicyError(ValueError):
    """A job config asks for something the owner's policy refuses; one sentence."""


@dataclass(frozen=True)
class JobPolicy:
    """The owner's settings that bound what a job config may do. Defaults: the strictest."""

    allow_remote_code: bool = False
    trusted_model_sources: tuple[str, ...] = ()
    data_dirs: tuple[str, ...] = ()
    allow_private_urls: bool = False
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES

    def to_env(self) -> str:
        """The JSON the trainer reads from ``$TRAINING_AGENT_JOB_POLICY``."""
        return json.dumps(
            {
                "allow_remote_code": self.allow_remote_code,
                "trusted_model_sources": list(self.trusted_model_sources),
                "data_dirs": list(self.data_dirs),
                "allow_private_urls": self.allow_private_urls,
                "max_download_bytes": self.max_download_bytes,
            }
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> JobPolicy:
        """The policy the agent gave this trainer; the strictest one when it gave none."""
        raw = environ.get(POLICY_ENV)
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            return cls(
                allow_remote_code=data.get("allow_remote_code") is True,
                trusted_model_sources=tuple(str(s) for s in data.get("trusted_model_sources", [])),
                data_dirs=tuple(str(d) for d in data.get("data_dirs", [])),
                allow_private_urls=data.get("allow_private_urls") is True,
                max_download_bytes=int(data.get("max_download_bytes", DEFAULT_MAX_DOWNLOAD_BYTES)),
            )
        except (ValueError, TypeError, AttributeError):
            return cls()  # unreadable: the strictest

    def trusts(self, name: str) -> bool:
        """Whether code shipped with the model or tokenizer ``name`` may run."""
        if self.allow_remote_code:
            return True
        return any(
            name == source or (source.endswith("/") and name.startswith(source))
            for source in self.trusted_model_sources
        )

    def roots(self, job_dir: Path, cache_dir: Path | None) -> list[Path]:
        """The folders a job may read by path, symlinks resolved."""
        given = [job_dir, *([cache_dir] if cache_dir else []), *map(Path, self.data_dirs)]
        return [Path(os.path.realpath(root.expanduser())) for root in given]

    def check_path(self, what: str, value: str, *, base: Path, roots: Iterable[Path]) -> Path:
        """``value`` (relative to ``base``) resolved; ``PolicyError`` when outside ``roots``."""
        path = Path(value).expanduser()
        resolved = Path(os.path.realpath(path if path.is_absolute() else base / path))
        if not any(resolved.is_relative_to(root) for root in roots):
            raise PolicyError(PATH_REFUSED.format(what=what, value=value))
        return resolved


def is_local(name: str, base: Path) -> bool:
    """Whether a model or tokenizer ``name`` is a local folder rather than a hub id."""
    if not _HUB_ID.fullmatch(name) or ".." in name or _WINDOWS_DRIVE.match(name):
        return True
    return (base / name).exists()  # transformers reads a folder of that name first


def is_url(value: str) -> bool:
    """Whether a dataset source names a URL (any scheme) rather than a local path."""
    return "://" in value


def config_paths(config: Mapping[str, Any], base: Path) -> Iterator[tuple[str, str]]:
    """``(key, value)`` of every local path a TrainingConfig names (hub ids and URLs not)."""
    for section in ("model", "tokenizer"):
        name = _section(config, section).get("name")
        if isinstance(name, str) and name and is_local(name, base):
            yield f"{section}.name", name
    dataset = config.get("dataset_path")
    if isinstance(dataset, str) and dataset and not is_url(dataset):
        yield "dataset_path", dataset
    training = _section(config, "training")
    reward_model = training.get("reward_model")  # a trained scorer (method rlhf)
    if isinstance(reward_model, str) and reward_model and is_local(reward_model, base):
        yield "training.reward_model", reward_model
    for where, key, value in (
        ("training.", "checkpoint_resume", training.get("checkpoint_resume")),
        ("training.", "output_dir", training.get("output_dir")),
        ("", "output_dir", config.get("output_dir")),
    ):
        if isinstance(value, str) and value:
            yield f"{where}{key}", value


def _section(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = config.get(name)
    return value if isinstance(value, Mapping) else {}
