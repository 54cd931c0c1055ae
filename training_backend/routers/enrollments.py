"""The signed-in user's enrollment tokens: create (shown once), list, revoke."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request

from training_backend.db.types import utcnow
from training_backend.deps import CurrentUser, DbSession, SettingsDep
from training_backend.public_url import backend_url
from training_backend.routing import DbRoute
from training_backend.schemas.enrollments import (
    EnrollmentCreated,
    EnrollmentList,
    EnrollmentPublic,
)
from training_backend.services import enrollments as service

router = APIRouter(prefix="/api/workers/enrollments", tags=["enrollment"], route_class=DbRoute)


@router.post("", status_code=201)
def create_enrollment(
    request: Request, user: CurrentUser, db: DbSession, settings: SettingsDep
) -> EnrollmentCreated:
    """A new single-use token for one agent; the answer is the only place it appears.

    It expires after ``enrollment_ttl_minutes``. An installer trades it for an API key
    at ``POST /api/training/agent/enroll``.
    """
    url = backend_url(request, settings)
    now = utcnow()
    ttl = timedelta(minutes=settings.enrollment_ttl_minutes)
    row, token = service.create_enrollment(
        db, user_id=user.id, now=now, ttl=ttl, max_pending=settings.max_pending_enrollments_per_user
    )
    return EnrollmentCreated(
        enrollment=EnrollmentPublic.of(row, now=now), token=token, backend_url=url
    )


@router.get("")
def list_enrollments(user: CurrentUser, db: DbSession, settings: SettingsDep) -> EnrollmentList:
    """The caller's tokens of the last week (pending, used, revoked, expired), newest first."""
    now = utcnow()
    rows = service.list_enrollments(db, user_id=user.id)
    return EnrollmentList(
        enrollments=[EnrollmentPublic.of(row, now=now) for row in rows],
        ttl_minutes=settings.enrollment_ttl_minutes,
    )


@router.delete("/{enrollment_id}")
def revoke_enrollment(enrollment_id: str, user: CurrentUser, db: DbSession) -> EnrollmentPublic:
    """Revoke an unused token: an installer holding it is refused (401)."""
    now = utcnow()
    row = service.revoke_enrollment(db, user_id=user.id, enrollment_id=enrollment_id, now=now)
    return EnrollmentPublic.of(row, now=now)
