"""What every page shares: the templates, the optional signed-in user, safe redirects and
the security headers.

The pages load scripts and styles only from ``/static`` (no inline script, no CDN), so
the Content-Security-Policy can forbid everything else; a page hands its data to its
script as a ``<script type="application/json">`` block, which is never executed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from training_backend import __version__
from training_backend.db.models import User
from training_backend.deps import DbSession, current_user
from training_backend.errors import ApiError

PACKAGE_DIR = Path(__file__).resolve().parent.parent
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


def page_user(request: Request, db: DbSession) -> User | None:
    """The signed-in user, or ``None`` (the page then asks to sign in)."""
    try:
        return current_user(request, db)
    except ApiError as exc:
        if exc.status == 401:
            return None
        raise


PageUser = Annotated[User | None, Depends(page_user)]


def safe_next(target: str) -> str:
    """``target`` if it is a path on this site, else the Training Agent page.

    >>> safe_next("/jobs/42"), safe_next("//evil.example/"), safe_next("https://x")
    ('/jobs/42', '/workers', '/workers')
    """
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/workers"


def sign_in_first(request: Request) -> RedirectResponse:
    """303 to the sign-in page, coming back to this page afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(here, safe='/')}", status_code=303)


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
