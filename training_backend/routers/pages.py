"""The web pages: sign-in, the Training Agent page, an agent's job history, jobs, a job.

Pages are server-rendered shells; their live parts (agents, keys, jobs, metrics, logs)
are filled in by the page's JavaScript from the JSON API, so every number a page shows
comes from the same routes scripts use. Every page but the sign-in page needs a session:
without one it redirects to ``/login?next=<the page>``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from training_backend.db.types import utcnow
from training_backend.deps import DbSession, PageUser, ReleaseMirrorDep, SettingsDep
from training_backend.errors import ApiError
from training_backend.platforms import DISPLAY_NAMES, PLATFORMS
from training_backend.public_url import backend_url
from training_backend.routing import DbRoute
from training_backend.services import agents as agents_service
from training_backend.services.downloads import list_downloads
from training_backend.services.enrollments import list_enrollments
from training_backend.services.jobs import get_owned_job
from training_backend.services.sessions import (
    create_session,
    secure_cookies,
    set_session_cookie,
)
from training_backend.services.sign_in_links import LINK_PATH, spend_sign_in_link
from training_backend.templating import render

router = APIRouter(include_in_schema=False, route_class=DbRoute)

NextPage = Annotated[str, Query(alias="next", max_length=2000)]

#: An absolute path of this site in plain URL characters: no scheme, no host, no second
#: leading slash, no backslash, no space, tab, newline or other control character. A
#: browser drops tabs and newlines from a URL and reads a backslash as ``/``, so
#: ``/<tab>/evil.example`` would otherwise leave the site.
_PLAIN_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@%/?#]*")


def safe_next(target: str) -> str:
    """``target`` if it is a plain absolute path on this site, else the Training Agent page.

    >>> safe_next("/jobs/42"), safe_next("//evil.example/"), safe_next("/\\t/evil.example")
    ('/jobs/42', '/workers', '/workers')
    """
    return target if _PLAIN_PATH.fullmatch(target) else "/workers"


def sign_in_first(request: Request) -> RedirectResponse:
    """303 to the sign-in page, coming back to this page afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(here, safe='/')}", status_code=303)


@router.get(LINK_PATH + "{token}")
def sign_in_link(request: Request, token: str, db: DbSession, settings: SettingsDep) -> Response:
    """Spend a single-use sign-in link: a new session, then the Training Agent page."""
    try:
        user_id = spend_sign_in_link(db, token=token, now=utcnow())
    except ApiError as exc:
        return _not_found(request, None, exc, back="/login", heading="Sign-in link used")
    lifetime = timedelta(hours=settings.session_lifetime_hours)
    _, session_token = create_session(db, user_id=user_id, now=utcnow(), lifetime=lifetime)
    page = RedirectResponse("/workers", status_code=303)
    secure = secure_cookies(request, settings)
    set_session_cookie(page, session_token, lifetime=lifetime, secure=secure)
    return page


@router.get("/")
def home() -> RedirectResponse:
    """The Training Agent page is the start page."""
    return RedirectResponse("/workers", status_code=303)


@router.get("/agents")
def agents_alias() -> RedirectResponse:
    """Old and alternative name of the Training Agent page."""
    return RedirectResponse("/workers", status_code=308)


@router.get("/login")
def login_page(request: Request, user: PageUser, next_page: NextPage = "/workers") -> Response:
    """The sign-in form; a signed-in visitor goes straight on to ``next``."""
    target = safe_next(next_page)
    if user is not None:
        return RedirectResponse(target, status_code=303)
    return render(request, "login.html", user=None, title="Sign in", data={"next": target})


@router.get("/workers")
def workers_page(
    request: Request,
    user: PageUser,
    db: DbSession,
    settings: SettingsDep,
    mirror: ReleaseMirrorDep,
) -> Response:
    """Download the agent, make a key, install, and watch the agents come online.

    The ids of the user's enrollment tokens at render time go into the page, so that the
    token of an enrolled download clicked right away is told apart (enrollments.js).
    """
    if user is None:
        return sign_in_first(request)
    url = backend_url(request, settings)
    user_agent = request.headers.get("user-agent")
    upstream = mirror.upstream_for(settings)
    downloads = list_downloads(settings, backend_url=url, user_agent=user_agent, upstream=upstream)
    detected = downloads.detected_platform
    primary = next((a for a in downloads.artifacts if a.platform == detected), None)
    data: dict[str, Any] = {
        "detected_platform": detected,
        "platforms": [{"id": p, "name": DISPLAY_NAMES[p]} for p in PLATFORMS],
        "enrollment_ids": [e.id for e in list_enrollments(db, user_id=user.id)],
    }
    return render(
        request,
        "workers.html",
        user=user,
        title="Training Agent",
        data=data,
        downloads=downloads,
        primary=primary,
        enrollment_ttl_minutes=settings.enrollment_ttl_minutes,
    )


@router.get("/workers/{agent_id}")
def agent_page(request: Request, agent_id: str, user: PageUser, db: DbSession) -> Response:
    """One agent and the jobs it ran for the signed-in user."""
    if user is None:
        return sign_in_first(request)
    try:
        agent = agents_service.get_agent(db, user_id=user.id, agent_id=agent_id)
    except ApiError as exc:
        return _not_found(request, user, exc, back="/workers")
    title = f"Agent {agent.hostname or agent.agent_id}"
    data = {"agent_id": agent.agent_id}
    return render(request, "agent.html", user=user, title=title, data=data, agent=agent)


@router.get("/jobs")
def jobs_page(request: Request, user: PageUser) -> Response:
    """The user's jobs and the form to submit one."""
    if user is None:
        return sign_in_first(request)
    return render(request, "jobs.html", user=user, title="Jobs", data={})


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str, user: PageUser, db: DbSession) -> Response:
    """One job: status, progress, loss chart, metrics, log tail and controls."""
    if user is None:
        return sign_in_first(request)
    try:
        job = get_owned_job(db, job_id=job_id, user_id=user.id)
    except ApiError as exc:
        return _not_found(request, user, exc, back="/jobs")
    title = f"Job {job.model_name or job.id[:8]}"
    return render(request, "job.html", user=user, title=title, data={"job_id": job.id}, job=job)


def _not_found(
    request: Request, user: Any, exc: ApiError, *, back: str, heading: str = "Not found"
) -> Response:
    return render(
        request,
        "not_found.html",
        user=user,
        title=heading,
        data={},
        status_code=exc.status,
        message=exc.message,
        back=back,
        heading=heading,
    )
