"""The signed-in user's API keys: create (shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from training_backend.body import json_body, read_json_object_capped, validate
from training_backend.db.types import utcnow
from training_backend.deps import CurrentUser, DbSession, SettingsDep, WakeupsDep
from training_backend.routing import DbRoute
from training_backend.schemas.accounts import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyPublic,
    ApiKeyWithSecret,
    Done,
)
from training_backend.services import api_keys as service
from training_backend.services.wakeups import Signal

router = APIRouter(prefix="/api/user/api-keys", tags=["api keys"], route_class=DbRoute)

MAX_KEY_BODY_BYTES = 16 * 1024


async def _small_body(request: Request) -> dict[str, Any]:
    return await read_json_object_capped(request, MAX_KEY_BODY_BYTES)


SmallBody = Annotated[dict[str, Any], Depends(_small_body)]


@router.post("", status_code=201, openapi_extra=json_body(ApiKeyCreate))
def create_key(
    user: CurrentUser, body: SmallBody, db: DbSession, settings: SettingsDep
) -> ApiKeyCreated:
    """A new key for the caller; the answer is the only place its value ever appears.

    Scopes: ``all``, ``training``, ``production``, ``testing`` (default ``training``);
    anything else, ``worker`` included, is 400 ``INVALID_SCOPES`` listing the valid ones.
    At most ``max_api_keys_per_user`` unrevoked keys (409 ``QUOTA_EXCEEDED``).
    """
    spec = validate(ApiKeyCreate, body)
    row, key = service.create_api_key(
        db,
        user_id=user.id,
        name=spec.name,
        scopes=spec.scopes,
        max_keys=settings.max_api_keys_per_user,
    )
    return ApiKeyCreated(apiKey=ApiKeyWithSecret(**ApiKeyPublic.of(row).model_dump(), key=key))


@router.get("")
def list_keys(user: CurrentUser, db: DbSession) -> ApiKeyList:
    """The caller's active keys (name, prefix, scopes, created, last used), newest first."""
    return ApiKeyList(
        api_keys=[ApiKeyPublic.of(row) for row in service.list_api_keys(db, user_id=user.id)]
    )


@router.delete("/{key_id}")
def revoke_key(key_id: str, user: CurrentUser, db: DbSession, wakeups: WakeupsDep) -> Done:
    """Revoke one of the caller's keys: its next request gets 401 ``INVALID_API_KEY``
    (and a poll it holds, at once)."""
    service.revoke_user_api_key(db, user_id=user.id, key_id=key_id, now=utcnow())
    wakeups.deliver(Signal.key(user.id, key_id))
    return Done()
