"""The page layout: the Jinja templates, the static folder, and the security headers
every page is sent with; ``render`` makes a page.

The pages load scripts and styles only from ``/static`` (no inline script, no CDN), so
the Content-Security-Policy can forbid everything else; a page hands its data to its
script as a ``<script type="application/json">`` block, which is never executed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from training_backend import __version__
from training_backend.db.models import User

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES = Jinja2Templates(directory=PACKAGE_DIR / "templates")
STATIC_DIR = PACKAGE_DIR / "static"

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def render(
    request: Request,
    template: str,
    *,
    user: User | None,
    title: str,
    data: dict[str, Any],
    status_code: int = 200,
    **context: Any,
) -> Response:
    """The page ``template`` with the shared layout's context and headers."""
    values = {"user": user, "title": title, "page_data": data, "version": __version__, **context}
    return TEMPLATES.TemplateResponse(
        request, template, values, status_code=status_code, headers=PAGE_HEADERS
    )


#: A year, with subdomains: what browsers expect before they trust the header.
HSTS_VALUE = b"max-age=31536000; includeSubDomains"


class StrictTransportSecurity:
    """ASGI middleware: ``Strict-Transport-Security`` on every answer sent over https.

    Over plain http the header would mean nothing (browsers ignore it there), so it is
    sent only when the request came over https as uvicorn sees it (behind a proxy: its
    ``X-Forwarded-Proto``, see ``forwarded_allow_ips``), or always with ``always``
    (setting ``cookie_secure``: TLS ends at a proxy that does not say so).
    """

    def __init__(self, app: ASGIApp, *, always: bool = False) -> None:
        self.app = app
        self.always = always

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (self.always or scope.get("scheme") == "https"):
            await self.app(scope, receive, send)
            return

        async def send_with_hsts(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"strict-transport-security", HSTS_VALUE))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_hsts)
