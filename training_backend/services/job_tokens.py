"""Job tokens: the per-job bearer secret an agent gets at claim time."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from training_backend.db.models import TrainingJob
from training_backend.errors import ApiError
from training_backend.security import secret_matches

_BEARER_PREFIX = "bearer "


def extract_job_token(headers: Mapping[str, str]) -> str:
    """The token of ``Authorization: Bearer <token>`` (401 ``MISSING_TOKEN`` without one)."""
    value = headers.get("authorization", "").strip()
    if not value.lower().startswith(_BEARER_PREFIX) or not value[len(_BEARER_PREFIX) :].strip():
        raise ApiError(401, "MISSING_TOKEN", "Unauthorized: Bearer token required")
    return value[len(_BEARER_PREFIX) :].strip()


def authenticate_job(db: Session, *, job_id: str, token: str) -> TrainingJob:
    """Job ``job_id``, if ``token`` is its token: else 404 ``JOB_NOT_FOUND`` or 401."""
    job = db.get(TrainingJob, job_id)
    if job is None:
        raise ApiError(404, "JOB_NOT_FOUND", "Job not found")
    if not secret_matches(token, job.job_token_hash):
        raise ApiError(401, "INVALID_TOKEN", "Unauthorized: Invalid token")
    return job
