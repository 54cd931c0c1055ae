"""Job tokens: the per-job bearer secret an agent gets at claim time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from training_backend.db.models import TrainingJob
from training_backend.errors import ApiError
from training_backend.security import secret_matches
from training_backend.services.job_revocation import token_revoked
from training_backend.services.leases import renew_lease

_BEARER_PREFIX = "bearer "


def extract_job_token(headers: Mapping[str, str]) -> str:
    """The token of ``Authorization: Bearer <token>`` (401 ``MISSING_TOKEN`` without one)."""
    value = headers.get("authorization", "").strip()
    if not value.lower().startswith(_BEARER_PREFIX) or not value[len(_BEARER_PREFIX) :].strip():
        raise ApiError(401, "MISSING_TOKEN", "Unauthorized: Bearer token required")
    return value[len(_BEARER_PREFIX) :].strip()


def lease_expired() -> ApiError:
    """409 ``LEASE_EXPIRED``: the token's lease ran out and the job was taken back."""
    message = (
        "The job's lease expired: the backend lost contact with this agent and took the "
        "job back; stop running it"
    )
    return ApiError(409, "LEASE_EXPIRED", message)


def authenticate_job(
    db: Session,
    *,
    job_id: str,
    token: str,
    now: datetime | None = None,
    lease_seconds: int | None = None,
) -> TrainingJob:
    """Job ``job_id``, if ``token`` is its token: else 404 ``JOB_NOT_FOUND`` or 401.

    A token whose lease expired gets 409 ``LEASE_EXPIRED``; one revoked with the agent
    or key that claimed the job gets 403 ``JOB_TOKEN_REVOKED``. With ``now`` the first
    use of the token confirms the claim, and with ``lease_seconds`` too the job's lease
    is renewed (flushed; the caller commits).
    """
    job = db.get(TrainingJob, job_id)
    if job is None:
        raise ApiError(404, "JOB_NOT_FOUND", "Job not found")
    if secret_matches(token, job.job_token_hash):
        if now is not None and job.claim_confirmed_at is None:
            job.claim_confirmed_at = now  # the claim answer arrived: no claiming it again
        if now is not None and lease_seconds is not None:
            renew_lease(db, job=job, now=now, lease_seconds=lease_seconds)
        return job
    if any(secret_matches(token, revoked) for revoked in job.revoked_token_hashes or ()):
        raise token_revoked()
    if any(secret_matches(token, retired) for retired in job.retired_token_hashes or ()):
        raise lease_expired()
    raise ApiError(401, "INVALID_TOKEN", "Unauthorized: Invalid token")
