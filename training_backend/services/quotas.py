"""Per-user quotas: how many datasets (and how many bytes of them), API keys and pending
enrollment tokens one user may hold, so one account cannot fill the backend's disk or
database. Each limit is a setting; 0 turns it off.

A quota is checked in the transaction that adds the row, after ``lock_user`` took the
user's row: concurrent requests of one user then check one after the other, on SQLite
(the write lock) and PostgreSQL (the row lock) alike, so a burst cannot overshoot.
Going over answers 409 ``QUOTA_EXCEEDED`` with a sentence naming the limit and what to
do, and ``limit`` in the body.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from training_backend.db.models import ApiKey, Dataset, EnrollmentToken, User
from training_backend.errors import ApiError


def quota_exceeded(message: str, *, limit: int) -> ApiError:
    """409 ``QUOTA_EXCEEDED`` with ``message`` and the ``limit`` that was reached."""
    return ApiError(409, "QUOTA_EXCEEDED", message, extra={"limit": limit})


def lock_user(db: Session, *, user_id: str) -> None:
    """Hold the user's row until the transaction ends (a no-op write takes the lock)."""
    db.execute(
        update(User)
        .where(User.id == user_id)
        .values(id=User.id)
        .execution_options(synchronize_session=False)
    )


def check_dataset_quota(
    db: Session, *, user_id: str, adding_bytes: int, max_count: int, max_bytes: int
) -> None:
    """409 unless the user may store one more dataset of ``adding_bytes``."""
    count, used = db.execute(
        select(func.count(), func.coalesce(func.sum(Dataset.size_bytes), 0)).where(
            Dataset.user_id == user_id
        )
    ).one()
    if max_count and count >= max_count:
        message = (
            f"You have {count} datasets, the most this backend keeps per user "
            "(TRAINING_BACKEND_MAX_DATASETS_PER_USER); delete one before uploading another"
        )
        raise quota_exceeded(message, limit=max_count)
    if max_bytes and int(used) + adding_bytes > max_bytes:
        message = (
            f"This upload would take your datasets past {max_bytes} bytes, the most this "
            "backend keeps per user (TRAINING_BACKEND_MAX_DATASET_STORAGE_BYTES_PER_USER); "
            "delete datasets you no longer need"
        )
        raise quota_exceeded(message, limit=max_bytes)


def check_api_key_quota(db: Session, *, user_id: str, max_keys: int) -> None:
    """409 unless the user may have one more unrevoked API key."""
    if not max_keys:
        return
    count = db.scalar(
        select(func.count())
        .select_from(ApiKey)
        .where(ApiKey.user_id == user_id)
        .where(ApiKey.revoked_at.is_(None))
    )
    if (count or 0) >= max_keys:
        message = (
            f"You have {count} API keys, the most this backend allows per user "
            "(TRAINING_BACKEND_MAX_API_KEYS_PER_USER); revoke one you no longer use"
        )
        raise quota_exceeded(message, limit=max_keys)


def check_enrollment_quota(db: Session, *, user_id: str, max_pending: int, now: datetime) -> None:
    """409 unless the user may have one more unused, unexpired enrollment token."""
    if not max_pending:
        return
    count = db.scalar(
        select(func.count())
        .select_from(EnrollmentToken)
        .where(EnrollmentToken.user_id == user_id)
        .where(EnrollmentToken.used_at.is_(None))
        .where(EnrollmentToken.revoked_at.is_(None))
        .where(EnrollmentToken.expires_at > now)
    )
    if (count or 0) >= max_pending:
        message = (
            f"You have {count} agent downloads waiting for their agent, the most this "
            "backend allows (TRAINING_BACKEND_MAX_PENDING_ENROLLMENTS_PER_USER); install "
            "one of them or revoke some on the Training Agent page"
        )
        raise quota_exceeded(message, limit=max_pending)
