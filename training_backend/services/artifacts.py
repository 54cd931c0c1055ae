"""Artifacts: declaring an upload, checking it against the quota, finding one to download.

An upload is keyed by its job and name. Declaring the same name and SHA-256 again
answers the upload already there and how much of it the backend holds, so an agent that
restarts goes on where it stopped. The chunks themselves are ``artifact_chunks``'s.

Rows come before bytes: a row is committed before the store sees its key, and deleted
before the store's bytes are, so stored bytes without a row are always garbage
(``artifact_gc`` removes them) and a row never names bytes that were never written.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from training_backend.db.models import Artifact, TrainingJob
from training_backend.errors import ApiError
from training_backend.schemas.artifacts import ArtifactDeclare
from training_backend.services.artifact_store import ArtifactStore
from training_backend.services.artifact_store.errors import StoreError

GB = 1000**3


@contextmanager
def storing() -> Iterator[None]:
    """Turn a store's failure into its answer: 507 when full, 503 otherwise."""
    try:
        yield
    except StoreError as exc:
        raise exc.api_error() from exc


def _gb(size_bytes: int) -> str:
    return f"{size_bytes / GB:.2f} GB"


def quota_used(db: Session, *, user_id: str) -> int:
    """Bytes the user's artifacts take, unfinished uploads counted at their full size."""
    query = select(func.coalesce(func.sum(Artifact.size_bytes), 0)).where(
        Artifact.user_id == user_id
    )
    return int(db.scalar(query) or 0)


def _check_quota(db: Session, *, user_id: str, size_bytes: int, quota_bytes: int) -> None:
    used = quota_used(db, user_id=user_id)
    if used + size_bytes <= quota_bytes:
        return
    message = (
        f"This artifact ({_gb(size_bytes)}) would take your artifacts past your quota of "
        f"{_gb(quota_bytes)} ({_gb(used)} used): delete jobs you no longer need, or ask "
        "the operator to raise TRAINING_BACKEND_ARTIFACT_QUOTA_GB"
    )
    raise ApiError(413, "ARTIFACT_QUOTA_EXCEEDED", message)


def _check_room(store: ArtifactStore, size_bytes: int) -> None:
    with storing():
        free = store.free_bytes()
    if free is not None and free < size_bytes:
        message = (
            f"The backend's artifact storage has {_gb(free)} free, less than this "
            f"artifact's {_gb(size_bytes)}; the upload goes on once the operator frees space"
        )
        raise ApiError(507, "INSUFFICIENT_STORAGE", message)


def _named(db: Session, *, job_id: str, name: str) -> Artifact | None:
    query = select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name)
    return db.scalar(query)


def discard(db: Session, *, store: ArtifactStore, artifact: Artifact) -> None:
    """Delete the artifact: its row first (committed), then its stored bytes."""
    key = artifact.storage_key
    db.delete(artifact)
    db.commit()
    with storing():
        store.discard(key)


def declare_artifact(
    db: Session,
    *,
    store: ArtifactStore,
    job: TrainingJob,
    declared: ArtifactDeclare,
    quota_bytes: int,
    now: datetime,
) -> tuple[Artifact, bool]:
    """The upload of ``declared`` in ``job`` and whether it is new.

    The same name and SHA-256 answer the existing upload. The same name with other
    content replaces an unfinished upload (the file changed, the agent starts over) and
    is refused with 409 ``ARTIFACT_EXISTS`` once the first one is complete.
    """
    existing = _named(db, job_id=job.id, name=declared.name)
    if existing is not None:
        if existing.sha256 == declared.sha256 and existing.size_bytes == declared.size_bytes:
            return existing, False
        if existing.complete:
            message = (
                f"This job already has a complete artifact named '{declared.name}' with "
                "other content: give the new output another name"
            )
            raise ApiError(409, "ARTIFACT_EXISTS", message)
        discard(db, store=store, artifact=existing)
    _check_quota(db, user_id=job.user_id, size_bytes=declared.size_bytes, quota_bytes=quota_bytes)
    _check_room(store, declared.size_bytes)
    artifact = Artifact(
        job_id=job.id,
        user_id=job.user_id,
        name=declared.name,
        kind=declared.kind,
        size_bytes=declared.size_bytes,
        sha256=declared.sha256,
        received_bytes=0,
        complete=False,
        storage_key=uuid.uuid4().hex,
        upload_state={},
        created_at=now,
        updated_at=now,
    )
    db.add(artifact)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()  # the same declaration raced this one and won: answer that one
        raced = _named(db, job_id=job.id, name=declared.name)
        if raced is None or raced.sha256 != declared.sha256:
            raise
        return raced, False
    return artifact, True


def artifact_of_job(db: Session, *, job_id: str, artifact_id: str) -> Artifact:
    """Artifact ``artifact_id`` of ``job_id``; 404 ``ARTIFACT_NOT_FOUND`` for any other id."""
    artifact = db.get(Artifact, artifact_id)
    if artifact is None or artifact.job_id != job_id:
        message = (
            f"This job has no artifact '{artifact_id}' (it was discarded or never "
            "declared): declare the upload again"
        )
        raise ApiError(404, "ARTIFACT_NOT_FOUND", message)
    return artifact


def list_artifacts(db: Session, *, job_id: str) -> list[Artifact]:
    """The job's artifacts, oldest first, complete or not."""
    query = select(Artifact).where(Artifact.job_id == job_id)
    return list(db.scalars(query.order_by(Artifact.created_at, Artifact.name)))


def downloadable(db: Session, *, job_id: str, artifact_id: str) -> Artifact:
    """A complete artifact of the job (404 if unknown, 409 while it is still arriving)."""
    artifact = db.get(Artifact, artifact_id)
    if artifact is None or artifact.job_id != job_id:
        raise ApiError(404, "ARTIFACT_NOT_FOUND", "Artifact not found")
    return _complete_or_409(artifact)


def downloadable_by_name(db: Session, *, job_id: str, name: str) -> Artifact:
    """The complete artifact of the job called ``name`` (the admin CLI's download)."""
    artifact = _named(db, job_id=job_id, name=name)
    if artifact is None:
        names = ", ".join(a.name for a in list_artifacts(db, job_id=job_id)) or "none"
        message = f"Job {job_id} has no artifact named '{name}' (it has: {names})"
        raise ApiError(404, "ARTIFACT_NOT_FOUND", message)
    return _complete_or_409(artifact)


def _complete_or_409(artifact: Artifact) -> Artifact:
    if not artifact.complete:
        message = (
            f"Artifact '{artifact.name}' is still being uploaded "
            f"({artifact.received_bytes} of {artifact.size_bytes} bytes): try again later"
        )
        raise ApiError(409, "ARTIFACT_INCOMPLETE", message)
    return artifact
