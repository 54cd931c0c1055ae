"""Artifact garbage: uploads abandoned half-way, and stored bytes no row names any more
(the artifacts of deleted jobs and users, uploads discarded mid-way by a crash).

    report = collect_garbage(db, store=store, now=utcnow(), abandoned_after=timedelta(days=3))

Safe while uploads go on: a row is committed before its key reaches the store, so a key
listed here without a row is garbage for good (see ``services/artifacts``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from training_backend.db.models import Artifact
from training_backend.services.artifact_store import ArtifactStore
from training_backend.services.artifacts import discard, storing

log = logging.getLogger(__name__)

_BATCH = 500


@dataclass(frozen=True)
class GarbageReport:
    """What one collection found (and removed, unless it was a dry run)."""

    abandoned: list[str]
    """Storage keys of unfinished uploads untouched for too long."""
    orphaned: list[str]
    """Storage keys no artifact row names."""


def _abandoned(db: Session, *, before: datetime) -> list[Artifact]:
    query = select(Artifact).where(Artifact.complete.is_(False), Artifact.updated_at < before)
    return list(db.scalars(query))


def _orphaned(db: Session, store: ArtifactStore) -> list[str]:
    with storing():
        keys = list(store.keys())
    orphans: list[str] = []
    for start in range(0, len(keys), _BATCH):
        batch = keys[start : start + _BATCH]
        query = select(Artifact.storage_key).where(Artifact.storage_key.in_(batch))
        known = set(db.scalars(query))
        orphans += [key for key in batch if key not in known]
    return orphans


def collect_garbage(
    db: Session,
    *,
    store: ArtifactStore,
    now: datetime,
    abandoned_after: timedelta,
    dry_run: bool = False,
) -> GarbageReport:
    """Remove abandoned uploads (rows and bytes) and orphaned bytes; ``dry_run`` only looks."""
    abandoned = _abandoned(db, before=now - abandoned_after)
    report = GarbageReport(
        abandoned=[artifact.storage_key for artifact in abandoned],
        orphaned=_orphaned(db, store),
    )
    if dry_run:
        return report
    for artifact in abandoned:
        discard(db, store=store, artifact=artifact)
    with storing():
        for key in report.orphaned:
            store.discard(key)
    log.info(
        "artifact gc: %d abandoned uploads, %d orphaned objects removed from %s",
        len(report.abandoned),
        len(report.orphaned),
        store.location,
    )
    return report


def delete_job_artifacts(db: Session, *, store: ArtifactStore, job_id: str) -> int:
    """Delete every artifact of ``job_id`` (before the job itself goes); how many."""
    artifacts = list(db.scalars(select(Artifact).where(Artifact.job_id == job_id)))
    for artifact in artifacts:
        discard(db, store=store, artifact=artifact)
    return len(artifacts)
