"""Which of a job's declared outputs go to the platform, checked before anything is read.

When a job completes on a backend that offers ``artifacts``, ``plan_uploads`` takes
what the trainer declared (``executor.events``) and decides, output by output:

- by kind, as the job's ``config.outputs.upload`` says: ``"final"`` (the default: every
  ``output``, that is adapters, models and files, but no checkpoints), ``"all"``
  (checkpoints too) or ``"none"``;
- by place: the path, symlinks followed, must lie inside the job's work dir (a trainer
  must not make the agent send ``~/.ssh`` to the platform); the note for a path outside
  never says whether it exists;
- by existence and type: a regular file, or a directory (sent as one tar archive);
- by size: nothing above the machine's ``max_artifact_gb``.

Every output left out gets one job log line saying why and where it stays. The result
names each upload by its index among the declared outputs, so the terminal status can
put the artifact id next to the path it came from.
"""

from __future__ import annotations

import enum
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training_agent.jobs import JobOutput, OutputKind

GIB = 1024**3
MAX_NAME_CHARS = 200
# What an artifact name may hold: it becomes a download's file name on the platform.
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._+=@-]+")


class UploadMode(enum.StrEnum):
    """The job's ``config.outputs.upload``."""

    FINAL = "final"  # adapters, models and files; no checkpoints (the default)
    ALL = "all"  # every declared output, checkpoints included
    NONE = "none"  # nothing: outputs stay on this machine


@dataclass(frozen=True)
class PlannedUpload:
    """One output to upload: ``index`` among the declared outputs, its resolved path."""

    index: int
    path: Path
    name: str
    kind: OutputKind
    is_dir: bool


@dataclass
class UploadPlan:
    """What ``plan_uploads`` decided: the uploads, and a job log line per output left out."""

    uploads: list[PlannedUpload] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def upload_mode(config: Mapping[str, Any]) -> tuple[UploadMode, str | None]:
    """The job's upload mode, and a note when its setting could not be used."""
    outputs = config.get("outputs")
    value = outputs.get("upload", UploadMode.FINAL.value) if isinstance(outputs, dict) else None
    if outputs is None or value is None:
        return UploadMode.FINAL, None
    try:
        return UploadMode(value), None
    except ValueError:
        choices = ", ".join(f'"{mode.value}"' for mode in UploadMode)
        return UploadMode.FINAL, (
            f"outputs.upload is {value!r}, not one of {choices}; uploading the final outputs"
        )


def plan_uploads(
    declared: Sequence[JobOutput],
    *,
    config: Mapping[str, Any],
    work_dir: Path,
    max_bytes: int | None,
) -> UploadPlan:
    """Decide which of ``declared`` to upload (see the module docstring)."""
    plan = UploadPlan()
    mode, note = upload_mode(config)
    if note:
        plan.notes.append(note)
    if mode is UploadMode.NONE:
        return plan
    root = work_dir.resolve()
    names: set[str] = set()
    for index, output in enumerate(declared):
        if output.kind is OutputKind.CHECKPOINT and mode is not UploadMode.ALL:
            continue
        try:
            upload = _checked(index, output, root, max_bytes, plan.notes)
        except OSError as exc:
            plan.notes.append(f"output {output.path} is not uploaded: it cannot be read ({exc})")
            continue
        if upload is not None:
            upload = _unique(upload, names)
            names.add(upload.name)
            plan.uploads.append(upload)
    return plan


def _checked(
    index: int, output: JobOutput, root: Path, max_bytes: int | None, notes: list[str]
) -> PlannedUpload | None:
    resolved = Path(os.path.realpath(root / output.path))
    if resolved != root and root not in resolved.parents:
        notes.append(
            f"output {output.path} is not uploaded: it is outside the job's work directory "
            f"{root}; save outputs under $TRAINING_AGENT_JOB_DIR"
        )
        return None
    if resolved.is_dir():
        is_dir = True
    elif resolved.is_file():
        is_dir = False
    else:
        notes.append(f"output {output.path} is not uploaded: there is no file or directory there")
        return None
    if max_bytes is not None:
        size = _tree_size(resolved) if is_dir else resolved.stat().st_size
        if size > max_bytes:
            notes.append(too_big(output.path, size, max_bytes))
            return None
    name = artifact_name(output.name or resolved.name, is_dir=is_dir)
    return PlannedUpload(index, resolved, name, output.kind, is_dir)


def _tree_size(root: Path) -> int:
    """The bytes of the regular files under ``root`` (symlinks not followed)."""
    total = 0
    for folder, _dirs, files in os.walk(root):
        for file in files:
            info = os.lstat(os.path.join(folder, file))
            total += info.st_size if stat.S_ISREG(info.st_mode) else 0
    return total


def too_big(path: str | Path, size: int, max_bytes: int) -> str:
    """The job log line for an output above ``max_artifact_gb``."""
    return (
        f"output {path} is not uploaded: it has {size / GIB:.2f} GB, more than this "
        f"machine's max_artifact_gb ({max_bytes / GIB:g}); it stays at {path}"
    )


def artifact_name(name: str, *, is_dir: bool) -> str:
    """``name`` made safe as a file name (``.tar`` added for a directory).

    >>> artifact_name("final adapter", is_dir=True)
    'final_adapter.tar'
    """
    safe = _UNSAFE_NAME.sub("_", name).strip("._") or "output"
    if is_dir and not safe.endswith(".tar"):
        safe += ".tar"
    return safe[-MAX_NAME_CHARS:]


def _unique(upload: PlannedUpload, taken: set[str]) -> PlannedUpload:
    """The upload under a name no earlier upload of the job has (``name-2.tar``...)."""
    if upload.name not in taken:
        return upload
    stem, dot, suffix = upload.name.partition(".")
    number = 2
    while f"{stem}-{number}{dot}{suffix}" in taken:
        number += 1
    return PlannedUpload(
        upload.index, upload.path, f"{stem}-{number}{dot}{suffix}", upload.kind, upload.is_dir
    )
