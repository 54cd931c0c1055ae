"""ASGI: the plain polls this process's caches can answer, answered before FastAPI.

Almost every poll of an idle fleet asks the same question and gets the same answer
("no job for you"), and FastAPI's routing and dependency solving cost more than that
answer (docs/benchmarks.md). ``QuickPolls`` answers exactly the polls that
``routers.agent_protocol.poll`` would answer ``null`` from the caches alone: a plain
poll (no query string) with a known key and agent whose row needs no write, no job for
it since its last look (``services.dispatch.idle_now``) and no update to offer, the same
bytes the route sends. Everything else (a long poll, an error to explain, a job, a row
to write) goes on to the route untouched; the checks spend nothing until this answer is
certain, so a poll handed on is never counted twice.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from training_backend.db.types import utcnow
from training_backend.deps import poll_desk, update_offers
from training_backend.errors import ApiError
from training_backend.schemas.agent import no_job_body
from training_backend.services.agents import agent_identity_from_headers
from training_backend.services.checkin import quick_check_in
from training_backend.services.dispatch import idle_now

POLL_PATH = "/api/training/agent/poll"


class QuickPolls:
    """The middleware; ``owner`` is the app whose state (caches, settings) it reads."""

    def __init__(self, app: ASGIApp, *, owner: FastAPI) -> None:
        self.app = app
        self.owner = owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == POLL_PATH
            and scope["method"] == "GET"
            and not scope.get("query_string")
        ):
            body = self._answer(scope)
            if body is not None:
                length = str(len(body)).encode()
                headers = [(b"content-length", length), (b"content-type", b"application/json")]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope) -> bytes | None:
        """The body of the answer, or ``None`` to let the route answer."""
        desk = poll_desk(self.owner)
        # The first of repeated headers wins, as with starlette's Headers.get.
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in reversed(scope["headers"])
        }
        try:
            agent = agent_identity_from_headers(headers)
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
