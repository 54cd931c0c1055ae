"""The chunks of an artifact upload: stored once, in order, verified at the end.

    receive_chunk(db, store=..., hashes=..., job_id=..., artifact_id=..., offset=n, data=b)

A chunk at the offset the backend has reached is stored; one the backend already holds
answers success and writes nothing; one past that offset is 409 ``ARTIFACT_GAP`` with
``expected_offset``. A chunk that overlaps the end of what is held has only its new tail
stored. When the last byte arrives the object is finished and its SHA-256 compared with
the declared one: a match marks the artifact complete, a mismatch discards it (422
``ARTIFACT_CORRUPT``; the agent declares it again and starts over).

Writes and the row's ``received_bytes`` go together with a compare-and-set on the
database, so two backend processes that get the same chunk store it once; within a
process a lock per artifact keeps its chunks in order.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from training_backend.db.models import Artifact
from training_backend.errors import ApiError
from training_backend.services.artifact_store import ArtifactStore
from training_backend.services.artifacts import artifact_of_job, discard, storing
from training_backend.services.upload_hashes import UploadHashes

log = logging.getLogger(__name__)

HASH_BLOCK_BYTES = 1024 * 1024


def gap(expected_offset: int) -> ApiError:
    """409 ``ARTIFACT_GAP``: the chunk starts past the bytes the backend holds."""
    message = (
        f"The chunk starts past the {expected_offset} bytes the backend holds: "
        "send the bytes from expected_offset on"
    )
    return ApiError(409, "ARTIFACT_GAP", message, extra={"expected_offset": expected_offset})


def _overflow(artifact: Artifact) -> ApiError:
    message = (
        f"The chunk runs past the artifact's declared size ({artifact.size_bytes} bytes): "
        "declare the upload again with the file's real size"
    )
    return ApiError(400, "ARTIFACT_TOO_LONG", message)


def receive_chunk(
    db: Session,
    *,
    store: ArtifactStore,
    hashes: UploadHashes,
    job_id: str,
    artifact_id: str,
    offset: int,
    data: bytes | memoryview,
    now: datetime,
) -> Artifact:
    """Store ``data`` at ``offset`` of the artifact (see the module docstring)."""
    with hashes.locked(artifact_id):
        artifact = artifact_of_job(db, job_id=job_id, artifact_id=artifact_id)
        if artifact.complete:
            return artifact
        end = offset + len(data)
        if end > artifact.size_bytes:
            raise _overflow(artifact)
        held = artifact.received_bytes
        if offset > held:
            raise gap(held)
        if end > held and not _store_tail(db, store, hashes, artifact, data[held - offset :], now):
            db.refresh(artifact)  # another process moved it meanwhile: answer from there
            if offset > artifact.received_bytes:
                raise gap(artifact.received_bytes)
        return settle(db, store=store, hashes=hashes, artifact=artifact, now=now)


def _store_tail(
    db: Session,
    store: ArtifactStore,
    hashes: UploadHashes,
    artifact: Artifact,
    tail: bytes | memoryview,
    now: datetime,
) -> bool:
    """Write the bytes after ``received_bytes``; ``False`` if another process got there first."""
    held = artifact.received_bytes
    last = held + len(tail) == artifact.size_bytes
    with storing():
        state = store.write(
            artifact.storage_key, artifact.upload_state, offset=held, data=tail, last=last
        )
    moved = db.execute(
        update(Artifact)
        .where(Artifact.id == artifact.id, Artifact.received_bytes == held)
        .values(received_bytes=held + len(tail), upload_state=state, updated_at=now)
    )
    db.commit()
    if moved.rowcount != 1:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
        return False
    hashes.add(artifact.id, offset=held, data=tail)
    db.refresh(artifact)
    return True


def settle(
    db: Session, *, store: ArtifactStore, hashes: UploadHashes, artifact: Artifact, now: datetime
) -> Artifact:
    """Finish and verify the artifact once all its bytes are held (else leave it be).

    Also called when an upload is declared again, so one whose last chunk was stored
    just before a crash is finished by the next request about it.
    """
    if artifact.complete or artifact.received_bytes < artifact.size_bytes:
        return artifact
    with storing():
        store.finish(artifact.storage_key, artifact.upload_state)
        digest = hashes.digest(artifact.id, size=artifact.size_bytes) or _hash_stored(
            store, artifact
        )
    if digest != artifact.sha256:
        _corrupt(db, store, hashes, artifact, digest)
    db.execute(
        update(Artifact)
        .where(Artifact.id == artifact.id)
        .values(complete=True, completed_at=now, updated_at=now, upload_state={})
    )
    db.commit()
    db.refresh(artifact)
    log.info(
        "artifact %s of job %s complete: %d bytes",
        artifact.id,
        artifact.job_id,
        artifact.size_bytes,
    )
    return artifact


def _hash_stored(store: ArtifactStore, artifact: Artifact) -> str:
    sha256 = hashlib.sha256()
    for block in store.read(artifact.storage_key, start=0, end=artifact.size_bytes):
        sha256.update(block)
    return sha256.hexdigest()


def _corrupt(
    db: Session, store: ArtifactStore, hashes: UploadHashes, artifact: Artifact, digest: str
) -> None:
    hashes.forget(artifact.id)
    log.warning(
        "artifact %s of job %s discarded: sha256 %s, declared %s",
        artifact.id,
        artifact.job_id,
        digest,
        artifact.sha256,
    )
    name = artifact.name
    discard(db, store=store, artifact=artifact)
    message = (
        f"The bytes received for '{name}' do not match its declared SHA-256, so the upload "
        "was discarded: declare it again and send it from offset 0"
    )
    raise ApiError(422, "ARTIFACT_CORRUPT", message)
