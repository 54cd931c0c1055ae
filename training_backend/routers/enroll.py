"""``POST /api/training/agent/enroll``: an installer trades an enrollment token for a key.

No API key here (that is what the caller lacks), so the endpoint is limited per client
address instead (``AddressRateLimit``), before the body is even read.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from training_backend.body import json_body, read_json_object_capped, validate
from training_backend.db.types import utcnow
from training_backend.deps import DbSession, EnrollRateLimitDep, SettingsDep
from training_backend.public_url import backend_url
from training_backend.ratelimit import client_address
from training_backend.routing import DbRoute
from training_backend.schemas.enrollments import EnrollAnswer, EnrollRequest
from training_backend.services.enrollments import spend_enrollment

router = APIRouter(prefix="/api/training/agent", tags=["enrollment"], route_class=DbRoute)

MAX_ENROLL_BODY_BYTES = 4 * 1024


async def _limited_body(request: Request, limit: EnrollRateLimitDep) -> dict[str, Any]:
    limit.check(client_address(request))
    return await read_json_object_capped(request, MAX_ENROLL_BODY_BYTES)


LimitedBody = Annotated[dict[str, Any], Depends(_limited_body)]


@router.post("/enroll", status_code=201, openapi_extra=json_body(EnrollRequest))
def enroll(
    request: Request, body: LimitedBody, db: DbSession, settings: SettingsDep
) -> EnrollAnswer:
    """Spend the token once; answer a ``training`` key bound to the agent, and the URL.

    A malformed, unknown, used, revoked or expired token: 401 with a sentence that says
    to download the agent again. The key is named after the agent's hostname; the
    platform and version are read (and stored) by the agent's first poll, as always.
    """
    spec = validate(EnrollRequest, body)
    url = backend_url(request, settings)
    enrolled = spend_enrollment(
        db,
        token=spec.token,
        agent_id=spec.agent_id,
        hostname=spec.hostname or None,
        now=utcnow(),
    )
    key = enrolled.key_row
    return EnrollAnswer(
        api_key=enrolled.api_key,
        key_prefix=key.prefix,
        name=key.name,
        agent_id=spec.agent_id,
        backend_url=url,
    )
