"""A job's work directory and the environment its process starts with.

The directory is ``<jobs_dir>/<job_id>/`` (mode 0700, as is ``jobs_dir``: configs and
checkpoints can be private). It holds ``config.json`` (the job's config, for the trainer
to read) and ``events.jsonl`` (where the trainer appends its events, see
``executor.events``), both 0600; ``narrow_workspaces`` narrows an older version's wider
ones at start.

The child's environment is the agent's own environment minus what configures or
authenticates the agent:

- ``API_KEY``, and every variable starting with ``TRAINING_AGENT_`` (the agent's
  settings, ``TRAINING_AGENT_API_KEY`` among them);
- every variable whose name ends in ``_API_KEY``, ``_TOKEN``, ``_SECRET`` or
  ``_PASSWORD`` (compared case-insensitively).

Then come the job's own ``env`` overrides (a job may pass its own ``HF_TOKEN``: the
user put it there on purpose), then what the agent tells every trainer:
``TRAINING_AGENT_JOB_ID``, ``TRAINING_AGENT_JOB_DIR``, ``TRAINING_AGENT_EVENTS_FILE``,
``TRAINING_AGENT_CONTROL_FILE`` (where a pause or resume request is written, see
``executor.runner``), ``PYTHONUNBUFFERED=1`` (so Python trainers' prints reach the log
as they happen), and the agent's assignments such as ``CUDA_VISIBLE_DEVICES``, which
win over the job's own.
The job token and the API key are never passed; ``BACKEND_URL`` is not a secret and
stays.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training_agent.errors import JobConfigError, StateError
from training_agent.paths import PRIVATE_DIR, PRIVATE_FILE, narrow, private_dir, write_private

log = logging.getLogger(__name__)

SECRET_NAMES = frozenset({"API_KEY"})
# The files the agent writes into a work dir; what the trainer writes stays as it made it,
# behind the 0700 directory.
AGENT_FILES = ("config.json", "events.jsonl", "control.json")
SECRET_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "_PASSWORD")
AGENT_PREFIX = "TRAINING_AGENT_"

# A job id becomes a directory name: no separators, no "..", nothing a shell mangles.
_SAFE_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def is_safe_job_id(job_id: str) -> bool:
    """Whether ``job_id`` can name a directory: no separators, no "..", nothing odd."""
    return _SAFE_JOB_ID.fullmatch(job_id) is not None


def is_agent_secret(name: str) -> bool:
    """Whether an inherited variable must not reach a job (see the module docstring)."""
    upper = name.upper()
    return (
        upper in SECRET_NAMES or upper.startswith(AGENT_PREFIX) or upper.endswith(SECRET_SUFFIXES)
    )


def narrow_workspaces(jobs_dir: Path) -> int:
    """Make every work dir under ``jobs_dir`` 0700 and the agent's files in it 0600 where
    an older version left them wider; how many work dirs it changed."""
    changed = 0
    for job_dir in jobs_dir.iterdir() if jobs_dir.is_dir() else ():
        if job_dir.is_symlink() or not job_dir.is_dir():
            continue
        try:
            narrowed = narrow(job_dir, PRIVATE_DIR)
            for name in AGENT_FILES:
                narrowed |= narrow(job_dir / name, PRIVATE_FILE)
        except OSError as exc:  # another user's folder: say so, start anyway
            log.warning("cannot make %s owner-only: %s", job_dir, exc.strerror or exc)
            continue
        changed += narrowed
    return changed


@dataclass(frozen=True)
class Workspace:
    """Where one job runs. ``for_job`` only computes paths; ``create`` makes them."""

    job_id: str
    dir: Path

    @classmethod
    def for_job(cls, jobs_dir: Path, job_id: str) -> Workspace:
        """The workspace of ``job_id``; raises ``JobConfigError`` for an unsafe id."""
        if not is_safe_job_id(job_id):
            raise JobConfigError(f"job id {job_id!r} cannot be used as a directory name")
        return cls(job_id=job_id, dir=jobs_dir / job_id)

    @property
    def config_file(self) -> Path:
        return self.dir / "config.json"

    @property
    def events_file(self) -> Path:
        return self.dir / "events.jsonl"

    @property
    def control_file(self) -> Path:
        return self.dir / "control.json"

    def create(self, config: Mapping[str, Any]) -> None:
        """Make the directory (0700), write ``config.json``, start an empty events file.

        A directory left by an earlier attempt is reused (its checkpoints stay), but its
        events file starts over, so old events are never replayed. Raises ``StateError``
        when the disk refuses, ``JobConfigError`` when the config is not JSON-shaped.
        """
        try:
            text = json.dumps(config, indent=2) + "\n"
        except (TypeError, ValueError) as exc:
            raise JobConfigError(f"the job's config cannot be written as JSON: {exc}") from exc
        try:
            private_dir(self.dir)
            write_private(self.config_file, text.encode("utf-8"))
            write_private(self.events_file, b"")
            self.control_file.unlink(missing_ok=True)  # an old pause must not apply
        except OSError as exc:
            raise StateError(f"cannot prepare the job directory {self.dir}: {exc}") from exc

    def child_env(
        self,
        inherited: Mapping[str, str],
        overrides: Mapping[str, str],
        assigned: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """The job's environment: ``inherited`` minus secrets, plus overrides, plus ours.

        ``assigned`` (e.g. ``CUDA_VISIBLE_DEVICES``) comes last: the agent shares GPUs
        between jobs, so a job cannot pick another job's GPU.
        """
        reserved = [name for name in overrides if name.upper().startswith(AGENT_PREFIX)]
        if reserved:
            raise JobConfigError(
                f"the job's env may not set {reserved[0]}: "
                f"variables starting with {AGENT_PREFIX} are set by the agent"
            )
        env = {name: value for name, value in inherited.items() if not is_agent_secret(name)}
        env.update(overrides)
        env.update(
            TRAINING_AGENT_JOB_ID=self.job_id,
            TRAINING_AGENT_JOB_DIR=str(self.dir),
            TRAINING_AGENT_EVENTS_FILE=str(self.events_file),
            TRAINING_AGENT_CONTROL_FILE=str(self.control_file),
            PYTHONUNBUFFERED="1",
        )
        env.update(assigned or {})
        return env
