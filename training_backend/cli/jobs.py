"""``training-backend jobs submit`` and ``jobs show``: queue a job, look at one (its
artifacts: ``cli/artifacts.py``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from training_backend.body import validate
from training_backend.cli.artifacts import add_job_artifact_commands
from training_backend.cli.common import Subcommands, add_command, open_database, settings_of
from training_backend.db.types import utcnow
from training_backend.errors import ApiError
from training_backend.schemas.jobs import JobCreate, JobStatusView
from training_backend.services import datasets, jobs, users


def _read_job_file(path: str) -> JobCreate:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ApiError(400, "INVALID_JSON", f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "INVALID_REQUEST", f"{path} must hold a JSON object")
    return validate(JobCreate, data)


def _dataset_file(path: str, max_bytes: int) -> Path:
    """The ``--dataset`` file, checked before anything is stored (``ApiError`` otherwise)."""
    file = Path(path)
    try:
        size = file.stat().st_size
    except OSError as exc:
        message = f"dataset file {path} cannot be read ({exc.strerror}): give an existing file"
        raise ApiError(400, "DATASET_NOT_FOUND", message) from exc
    if not file.is_file():
        raise ApiError(400, "INVALID_REQUEST", f"dataset {path} is not a file: give a file")
    if size == 0:
        raise ApiError(400, "EMPTY_DATASET", f"dataset file {path} is empty: give a non-empty file")
    if size > max_bytes:
        message = (
            f"dataset file {path} is {size} bytes, more than the backend accepts "
            f"({max_bytes}): raise TRAINING_BACKEND_MAX_DATASET_BYTES or use a smaller file"
        )
        raise ApiError(413, "PAYLOAD_TOO_LARGE", message)
    return file


def _with_flags(spec: JobCreate, args: argparse.Namespace) -> JobCreate:
    """The file's requirements with ``--label``, ``--agent``, ``--min-gpus`` and
    ``--min-gpu-memory-gb`` added (a flag wins over the same key in the file)."""
    flags: dict[str, Any] = {
        "labels": args.label or None,
        "agent_id": args.agent,
        "min_gpus": args.min_gpus,
        "min_gpu_memory_gb": args.min_gpu_memory_gb,
    }
    given = {key: value for key, value in flags.items() if value is not None}
    if not given:
        return spec
    base = spec.requirements
    if base is not None and not isinstance(base, dict):
        return spec  # create_job says what is wrong with it
    return spec.model_copy(update={"requirements": {**(base or {}), **given}})


def jobs_submit(args: argparse.Namespace) -> int:
    """Queue a job from a JSON file and print its id; ``--dataset`` uploads its dataset."""
    spec = _with_flags(_read_job_file(args.file), args)
    settings = settings_of(args)
    dataset = (
        None if args.dataset is None else _dataset_file(args.dataset, settings.max_dataset_bytes)
    )
    if dataset is not None and spec.dataset_id is not None:
        message = f"{args.file} names a dataset_id and --dataset gives a file: use only one"
        raise ApiError(400, "INVALID_REQUEST", message)
    with open_database(args) as db:
        user = users.get_user_by_name(db, name=args.user)
        fields = spec.model_dump()
        if dataset is not None:
            stored = datasets.store_file(
                db,
                path=dataset,
                directory=datasets.datasets_dir(settings),
                max_bytes=settings.max_dataset_bytes,
                user_id=user.id,
                now=utcnow(),
            )
            fields["dataset_id"] = stored.id
        job = jobs.create_job(db, user_id=user.id, now=utcnow(), **fields)
        print(job.id)
    return 0


def jobs_show(args: argparse.Namespace) -> int:
    """Print a job (``{"job": {...}, "metric_points": n, "log_lines": m}`` with --json)."""
    with open_database(args) as db:
        job = jobs.get_job(db, job_id=args.job_id)
        view = JobStatusView.of(job, now=utcnow()).model_dump(mode="json")
        view["config"] = job.config
        counts = {
            "metric_points": jobs.count_metric_points(db, job_id=job.id),
            "log_lines": jobs.count_log_lines(db, job_id=job.id),
        }
    if args.json:
        print(json.dumps({"job": view} | counts, indent=2))
    else:
        _print_fields(view | counts)
    return 0


def _print_fields(data: dict[str, Any]) -> None:
    for name, value in data.items():
        shown = json.dumps(value) if isinstance(value, dict | list) else value
        print(f"{name}: {shown}")


def add_jobs_parser(commands: Subcommands) -> None:
    """``jobs submit`` and ``jobs show`` on the ``training-backend`` command line."""
    group = commands.add_parser("jobs", help="Submit and show jobs.").add_subparsers(required=True)
    submit = add_command(group, "submit", jobs_submit, "Queue a job; prints only its id.")
    submit.add_argument("--user", required=True, help="name of the job's owner")
    submit.add_argument("--file", required=True, help="the POST /api/training/jobs body")
    submit.add_argument("--dataset", help="upload this file as the job's dataset")
    submit.add_argument(
        "--label",
        action="append",
        metavar="LABEL",
        help="only an agent with this label may take it (repeat for several)",
    )
    submit.add_argument("--agent", metavar="AGENT_ID", help="only this agent of the user")
    submit.add_argument("--min-gpus", type=int, help="free GPUs the agent must report")
    submit.add_argument(
        "--min-gpu-memory-gb", type=float, help="memory each of those GPUs must have"
    )
    show = add_command(group, "show", jobs_show, "Show a job with its metric and log counts.")
    show.add_argument("job_id")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    add_job_artifact_commands(group)
