"""Artifacts on the command line: ``jobs artifacts``, ``jobs download``, ``jobs delete``
and ``artifacts gc``."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import timedelta
from pathlib import Path

from training_backend.cli.common import Subcommands, add_command, open_database, settings_of
from training_backend.db.types import utcnow
from training_backend.errors import ApiError
from training_backend.job_status import JobStatus
from training_backend.schemas.artifacts import ArtifactPublic
from training_backend.services import artifacts, jobs
from training_backend.services.artifact_gc import collect_garbage, delete_job_artifacts
from training_backend.services.artifact_store import open_store

_ACTIVE = {JobStatus.RUNNING.value, JobStatus.PAUSED.value}


def jobs_artifacts(args: argparse.Namespace) -> int:
    """Print a job's artifacts: id, name, kind, size, SHA-256 and whether complete."""
    with open_database(args) as db:
        job = jobs.get_job(db, job_id=args.job_id)
        rows = [
            ArtifactPublic.model_validate(a) for a in artifacts.list_artifacts(db, job_id=job.id)
        ]
    if args.json:
        print(json.dumps({"artifacts": [row.model_dump(mode="json") for row in rows]}, indent=2))
        return 0
    for row in rows:
        state = "complete" if row.complete else f"{row.received_bytes}/{row.size_bytes} bytes"
        print(f"{row.id}  {row.name}  {row.kind}  {row.size_bytes}  {row.sha256}  {state}")
    return 0


def jobs_download(args: argparse.Namespace) -> int:
    """Write a job's complete artifact to a file, checking its SHA-256; prints the path."""
    settings = settings_of(args)
    store = open_store(settings)
    with open_database(args) as db:
        artifact = artifacts.downloadable_by_name(db, job_id=args.job_id, name=args.name)
        key, size, expected = artifact.storage_key, artifact.size_bytes, artifact.sha256
    target = Path(args.output or artifact.name)
    if target.is_dir():
        target = target / artifact.name
    partial = target.with_name(f".{target.name}.partial")
    sha256 = hashlib.sha256()
    with artifacts.storing(), partial.open("wb") as file:
        for block in store.read(key, start=0, end=size):
            sha256.update(block)
            file.write(block)
    if sha256.hexdigest() != expected:
        partial.unlink()
        message = (
            f"the stored bytes of '{args.name}' do not match its SHA-256: the store is damaged"
        )
        raise ApiError(500, "ARTIFACT_CORRUPT", message)
    partial.replace(target)
    print(target)
    return 0


def jobs_delete(args: argparse.Namespace) -> int:
    """Delete a job that is not running, with its artifacts' stored bytes."""
    store = open_store(settings_of(args))
    with open_database(args) as db:
        job = jobs.get_job(db, job_id=args.job_id)
        if job.status in _ACTIVE:
            message = f"job {job.id} is {job.status}: cancel it first, then delete it"
            raise ApiError(409, "JOB_ACTIVE", message)
        removed = delete_job_artifacts(db, store=store, job_id=job.id)
        db.delete(job)
        db.commit()
    print(f"deleted job {args.job_id} and {removed} artifacts", file=sys.stderr)
    return 0


def artifacts_gc(args: argparse.Namespace) -> int:
    """Remove abandoned uploads and stored bytes no artifact names; prints what went."""
    settings = settings_of(args)
    store = open_store(settings)
    abandoned_after = timedelta(hours=settings.artifact_abandoned_hours)
    with open_database(args) as db:
        report = collect_garbage(
            db, store=store, now=utcnow(), abandoned_after=abandoned_after, dry_run=args.dry_run
        )
    verb = "would remove" if args.dry_run else "removed"
    print(
        f"{verb} {len(report.abandoned)} abandoned uploads and "
        f"{len(report.orphaned)} orphaned objects in {store.location}"
    )
    return 0


def add_job_artifact_commands(group: Subcommands) -> None:
    """``jobs artifacts``, ``jobs download`` and ``jobs delete`` in the ``jobs`` group."""
    listing = add_command(group, "artifacts", jobs_artifacts, "List a job's artifacts.")
    listing.add_argument("job_id")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    download = add_command(group, "download", jobs_download, "Save a job's artifact to a file.")
    download.add_argument("job_id")
    download.add_argument("name", help="the artifact's name (see `jobs artifacts`)")
    download.add_argument("--output", "-o", help="file or folder to write (default: ./NAME)")
    delete = add_command(group, "delete", jobs_delete, "Delete a job and its artifacts.")
    delete.add_argument("job_id")


def add_artifacts_parser(commands: Subcommands) -> None:
    """``artifacts gc`` on the ``training-backend`` command line."""
    group = commands.add_parser("artifacts", help="Look after artifact storage.")
    actions = group.add_subparsers(required=True)
    gc = add_command(
        actions, "gc", artifacts_gc, "Remove abandoned uploads and bytes of deleted artifacts."
    )
    gc.add_argument("--dry-run", action="store_true", help="only say what would go")
