"""ASGI: the polls this process's caches can check in, answered before FastAPI.

Almost every poll of an idle fleet asks the same question and gets the same answer
("no job for you"), and FastAPI's routing and dependency solving cost more than that
answer (docs/benchmarks.md). ``QuickPolls`` takes two kinds of poll off the route:

- a plain poll (no query string) that ``routers.agent_protocol.poll`` would answer
  ``null`` from the caches alone: a known key and agent whose row needs no write, no job
  for it since its last look (``services.dispatch.idle_now``) and no update to offer;
  the same bytes the route sends, with no thread and no database;
- a held poll (``?wait_seconds=N`` and nothing else) with a known key and agent and no
  update to offer: it goes through the route's own ``services.polls.answer_poll``
  (which writes the agent's row when it is due, and holds the poll), without FastAPI.

Everything else (a poll to refuse or explain, an unknown key or agent, a rate limit that
must ask the shared bucket, an update to offer) goes on to the route untouched; the
checks spend nothing until this lane is certain to answer, so a poll handed on is never
counted twice. An error while a held poll is answered is rendered by the app's own
exception handlers, so it reads exactly as the route's would.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from training_backend.db.types import utcnow
from training_backend.deps import poll_desk, update_offers
from training_backend.errors import ApiError
from training_backend.schemas.agent import no_job_body
from training_backend.services.agents import AgentIdentity, agent_identity_from_headers
from training_backend.services.checkin import QuickCheckIn, quick_check_in
from training_backend.services.dispatch import MAX_WAIT_SECONDS, idle_now
from training_backend.services.polls import answer_poll

POLL_PATH = "/api/training/agent/poll"
#: The one query a held poll may carry here (anything else goes to the route).
_HELD_QUERY = re.compile(rb"wait_seconds=(\d{1,5}(?:\.\d{1,6})?)")


def held_wait(query: bytes) -> float | None:
    """The hold a query asks for when it is exactly ``wait_seconds=<positive number>``
    (clamped to ``MAX_WAIT_SECONDS``), else ``None``."""
    match = _HELD_QUERY.fullmatch(query)
    if match is None:
        return None
    wait = float(match.group(1))
    return min(wait, MAX_WAIT_SECONDS) if wait > 0 else None


@dataclass(frozen=True, slots=True)
class _Held:
    headers: dict[str, str]
    agent: AgentIdentity
    quick: QuickCheckIn
    holding_until: datetime


class QuickPolls:
    """The middleware; ``owner`` is the app whose state (caches, settings) it reads."""

    def __init__(self, app: ASGIApp, *, owner: FastAPI) -> None:
        self.app = app
        self.owner = owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == POLL_PATH and scope["method"] == "GET":
            query = scope.get("query_string")
            if not query:
                body = self._answer(scope)
                if body is not None:
                    await _send_json(send, body)
                    return
            elif (wait_s := held_wait(query)) is not None:
                held = self._check_in_held(scope, wait_s)
                if held is not None:
                    await self._hold(scope, receive, send, held, wait_s)
                    return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope) -> bytes | None:
        """The body of a plain poll's answer, or ``None`` to let the route answer."""
        desk = poll_desk(self.owner)
        try:
            agent = agent_identity_from_headers(headers := _headers(scope))
            quick = quick_check_in(
                desk, headers, agent, backend_url=lambda: "", now=utcnow(), spend=False
            )
            offers = update_offers(self.owner)
            if quick is None or not idle_now(desk, quick):
                return None
            if not offers.nothing_to_offer(
                desk.settings, platform=agent.platform, version=agent.version
            ):
                return None
            if not desk.rate_limit.check_here(quick.who.key_id):  # 429 RATE_LIMITED
                return None  # the key's shared bucket must be asked: the route does that
        except ApiError:
            return None  # the route says what is wrong, with everything it needs
        return no_job_body(desk.settings.poll_interval_seconds)

    def _check_in_held(self, scope: Scope, wait_s: float) -> _Held | None:
        """A held poll this lane takes (its rate limit spent), or ``None`` for the route."""
        desk = poll_desk(self.owner)
        now = utcnow()
        holding_until = now + timedelta(seconds=wait_s)
        try:
            agent = agent_identity_from_headers(headers := _headers(scope))
            quick = quick_check_in(
                desk,
                headers,
                agent,
                backend_url=lambda: "",
                now=now,
                spend=False,
                holding_until=holding_until,
            )
            if quick is None or not update_offers(self.owner).nothing_to_offer(
                desk.settings, platform=agent.platform, version=agent.version
            ):
                return None
            if not desk.rate_limit.check_here(quick.who.key_id):
                return None
        except ApiError:
            return None
        return _Held(headers, agent, quick, holding_until)

    async def _hold(
        self, scope: Scope, receive: Receive, send: Send, held: _Held, wait_s: float
    ) -> None:
        desk = poll_desk(self.owner)
        request = Request(scope, receive)

        def url() -> str:
            return desk.settings.public_url or str(request.base_url).rstrip("/")

        try:
            body = await answer_poll(
                desk,
                update_offers(self.owner),
                held.headers,
                agent=held.agent,
                quick=held.quick,
                wait_s=wait_s,
                holding_until=held.holding_until,
                backend_url=url,
            )
        except Exception as exc:  # rendered as the route's would be; never swallowed
            handler = next(
                (
                    found
                    for kind in type(exc).__mro__
                    if (found := self.owner.exception_handlers.get(kind)) is not None
                ),
                None,
            )
            if handler is None:
                raise
            rendered = handler(request, exc)
            response = await rendered if inspect.isawaitable(rendered) else rendered
            await response(scope, receive, send)
            return
        await _send_json(send, body)


def _headers(scope: Scope) -> dict[str, str]:
    # The first of repeated headers wins, as with starlette's Headers.get.
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in reversed(scope["headers"])
    }


async def _send_json(send: Send, body: bytes) -> None:
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
