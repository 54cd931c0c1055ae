"""Artifacts: the agent uploads them in chunks with the job's token (feature ``artifacts``);
their owner lists and downloads them.

    POST /api/training/local/{job_id}/artifacts                      declare (job token)
    PUT  /api/training/local/{job_id}/artifacts/{artifact_id}?offset=N   one chunk (job token)
    GET  /api/training/jobs/{job_id}/artifacts                       list (owner)
    GET  /api/training/jobs/{job_id}/artifacts/{artifact_id}         download, with ranges

The upload routes are ``async``: they read the chunk on the event loop and do the
database and store work in one worker-thread hop, holding no connection while the body
arrives.
"""

from __future__ import annotations

import mmap
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from training_backend.body import read_json_object
from training_backend.db.models import Artifact, TrainingJob
from training_backend.db.types import utcnow
from training_backend.deps import (
    ApiKeyOrUser,
    ArtifactStoreDep,
    ChunkBuffersDep,
    DbSession,
    SessionFactoryDep,
    SettingsDep,
    UploadHashesDep,
)
from training_backend.errors import ApiError
from training_backend.routing import DbRoute
from training_backend.schemas.artifacts import (
    MAX_ARTIFACT_BYTES,
    ArtifactDeclare,
    ArtifactList,
    ArtifactProgress,
    ArtifactPublic,
)
from training_backend.services.artifact_chunks import receive_chunk, settle
from training_backend.services.artifact_store import ArtifactStore
from training_backend.services.artifacts import GB, declare_artifact, downloadable, list_artifacts
from training_backend.services.byte_ranges import Unsatisfiable, requested_range
from training_backend.services.job_tokens import authenticate_job, extract_job_token
from training_backend.services.jobs import get_owned_job
from training_backend.services.upload_hashes import UploadHashes
from training_backend.settings import BackendSettings

router = APIRouter(tags=["artifacts"], route_class=DbRoute)

UPLOADS = "/api/training/local/{job_id}/artifacts"
OWNED = "/api/training/jobs/{job_id}/artifacts"


def _leased(db: Session, job_id: str, token: str, settings: BackendSettings) -> TrainingJob:
    job = authenticate_job(
        db, job_id=job_id, token=token, now=utcnow(), lease_seconds=settings.lease_seconds
    )
    db.commit()
    return job


def _progress(artifact: Artifact, job: TrainingJob, settings: BackendSettings) -> ArtifactProgress:
    return ArtifactProgress(
        artifact_id=artifact.id,
        offset=artifact.received_bytes,
        complete=artifact.complete,
        max_chunk_bytes=settings.artifact_max_chunk_bytes,
        control=job.control,
    )


def _authenticated(
    sessions: sessionmaker[Session], job_id: str, token: str, settings: BackendSettings
) -> TrainingJob:
    with sessions() as db:
        return _leased(db, job_id, token, settings)


def _declare(
    sessions: sessionmaker[Session],
    store: ArtifactStore,
    hashes: UploadHashes,
    settings: BackendSettings,
    job: TrainingJob,
    declared: ArtifactDeclare,
) -> tuple[ArtifactProgress, bool]:
    with sessions() as db:
        quota = int(settings.artifact_quota_gb * GB)
        now = utcnow()
        artifact, created = declare_artifact(
            db, store=store, job=job, declared=declared, quota_bytes=quota, now=now
        )
        with hashes.locked(artifact.id):
            artifact = settle(db, store=store, hashes=hashes, artifact=artifact, now=now)
        return _progress(artifact, job, settings), created


@router.post(UPLOADS)
async def declare_upload(
    job_id: str,
    request: Request,
    response: Response,
    settings: SettingsDep,
    sessions: SessionFactoryDep,
    store: ArtifactStoreDep,
    hashes: UploadHashesDep,
) -> ArtifactProgress:
    """Declare an upload; the answer's ``offset`` is where to send from (201 if new)."""
    token = extract_job_token(request.headers)
    job = await run_in_threadpool(_authenticated, sessions, job_id, token, settings)
    declared = ArtifactDeclare.parse(await read_json_object(request))
    progress, created = await run_in_threadpool(
        _declare, sessions, store, hashes, settings, job, declared
    )
    response.status_code = 201 if created else 200
    return progress


def _chunk_too_large(max_bytes: int) -> ApiError:
    message = (
        f"A chunk may be at most {max_bytes} bytes ({max_bytes / 1024**2:g} MiB): "
        "send smaller chunks"
    )
    return ApiError(413, "CHUNK_TOO_LARGE", message)


async def _read_chunk(request: Request, buffer: mmap.mmap, max_bytes: int) -> memoryview:
    """The body, copied piece by piece into ``buffer`` (no join, no new chunk-sized bytes)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _chunk_too_large(max_bytes)
    view = memoryview(buffer)[:max_bytes]
    size = 0
    async for piece in request.stream():
        end = size + len(piece)
        if end > max_bytes:
            raise _chunk_too_large(max_bytes)
        view[size:end] = piece
        size = end
    return view[:size]


def _receive(
    sessions: sessionmaker[Session],
    store: ArtifactStore,
    hashes: UploadHashes,
    settings: BackendSettings,
    job: TrainingJob,
    artifact_id: str,
    offset: int,
    data: memoryview,
) -> ArtifactProgress:
    with sessions() as db:
        artifact = receive_chunk(
            db,
            store=store,
            hashes=hashes,
            job_id=job.id,
            artifact_id=artifact_id,
            offset=offset,
            data=data,
            now=utcnow(),
        )
        return _progress(artifact, job, settings)


@router.put(UPLOADS + "/{artifact_id}")
async def upload_chunk(
    job_id: str,
    artifact_id: str,
    offset: Annotated[int, Query(ge=0, le=MAX_ARTIFACT_BYTES)],
    request: Request,
    settings: SettingsDep,
    sessions: SessionFactoryDep,
    store: ArtifactStoreDep,
    hashes: UploadHashesDep,
    buffers: ChunkBuffersDep,
) -> ArtifactProgress:
    """Store the body at ``offset``; answers the bytes held and whether the upload is complete."""
    token = extract_job_token(request.headers)
    job = await run_in_threadpool(_authenticated, sessions, job_id, token, settings)
    with buffers.borrowed() as buffer:
        data = await _read_chunk(request, buffer, settings.artifact_max_chunk_bytes)
        return await run_in_threadpool(
            _receive, sessions, store, hashes, settings, job, artifact_id, offset, data
        )


@router.get(OWNED)
def job_artifacts(job_id: str, caller: ApiKeyOrUser, db: DbSession) -> ArtifactList:
    """The job's artifacts; unfinished uploads are listed with ``complete: false``."""
    job = get_owned_job(db, job_id=job_id, user_id=caller.user_id)
    rows = list_artifacts(db, job_id=job.id)
    return ArtifactList(artifacts=[ArtifactPublic.model_validate(row) for row in rows])


def _disposition(name: str) -> str:
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get(OWNED + "/{artifact_id}", response_class=StreamingResponse)
def download_artifact(
    job_id: str,
    artifact_id: str,
    request: Request,
    caller: ApiKeyOrUser,
    db: DbSession,
    store: ArtifactStoreDep,
) -> Response:
    """The artifact's bytes: ``ETag`` is its SHA-256, ``Range`` gives a part (206)."""
    job = get_owned_job(db, job_id=job_id, user_id=caller.user_id)
    artifact = downloadable(db, job_id=job.id, artifact_id=artifact_id)
    size, etag = artifact.size_bytes, f'"{artifact.sha256}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": _disposition(artifact.name),
        "X-Checksum-SHA256": artifact.sha256,
    }
    if_range = request.headers.get("if-range")
    wanted = request.headers.get("range") if if_range in (None, etag) else None
    try:
        span = requested_range(wanted, size=size)
    except Unsatisfiable:
        headers["Content-Range"] = f"bytes */{size}"
        message = f"The range asked for lies past the artifact's end ({size} bytes)"
        error = ApiError(416, "RANGE_NOT_SATISFIABLE", message, headers=headers)
        return error.response()
    start, end = span or (0, size)
    headers["Content-Length"] = str(end - start)
    status = 200
    if span is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    blocks = store.read(artifact.storage_key, start=start, end=end)
    return StreamingResponse(
        blocks, status_code=status, headers=headers, media_type="application/octet-stream"
    )
