"""While a job runs: keep its lease alive and carry out what the platform asks of it.

With the ``heartbeat`` extension, ``JobControl.watch`` sends a heartbeat every
``interval_s`` (at most 15 s, and a third of the lease when the claim said how long
it is); the answer's ``control`` says ``cancel``, ``pause`` or ``resume``. Every other
job-token answer carries ``control`` too; the uploader hands those to ``apply``. A v1
backend has no heartbeat: then the job's status is read with the API key every
``interval_s`` (at most 10 s) and ``cancelled`` counts as a cancel.

- ``cancel``: the kill ladder (``JobRunner.request_cancel``), then ``cancelled``.
- ``pause`` / ``resume``: asked of the trainer if it can (see ``executor.runner``).
- a lost lease (409 ``LEASE_EXPIRED``, or the job or its token gone) on a heartbeat or
  any report: the backend has given the job up (failed it or queued it again), so the
  job is stopped with the kill ladder and nothing more is reported for it (``lose``).
  A token the platform retired (403 ``JOB_TOKEN_REVOKED``: its agent or key was
  revoked) is the same, with that reason.

A failed heartbeat is not a lost lease: the job goes on, and the next heartbeat tries
again; the lease (minutes) is far longer than the heartbeat interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from training_agent.api import BackendClient
from training_agent.errors import ApiError, AuthError, HttpStatusError
from training_agent.jobs import ClaimedJob
from training_agent.retry import TOKEN_REVOKED_CODE, is_job_gone

log = logging.getLogger(__name__)

HEARTBEAT_MAX_S = 15.0  # docs/protocol.md (heartbeat): at least every 15 s
STATUS_WATCH_MAX_S = 10.0  # v1: read the job's status at least every 10 s
CANCELLED_ON_PLATFORM = "cancelled on the platform"
LEASE_LOST = "the backend gave the job up (lease lost)"
TOKEN_REVOKED = "the platform revoked the job's token (its agent or API key was revoked)"


def gone_reason(exc: HttpStatusError) -> str:
    """Why the backend no longer takes a job's reports, for the log and the job's end."""
    return TOKEN_REVOKED if exc.code == TOKEN_REVOKED_CODE else LEASE_LOST


class Controllable(Protocol):
    """What control needs of a running job (``JobRunner``)."""

    def request_cancel(self, reason: str) -> None: ...

    def request_pause(self) -> bool: ...

    def request_resume(self) -> bool: ...


def _ignore(_job_id: str) -> None:
    return None


class JobControl:
    """Heartbeats (or status reads) for one job, and what their answers ask."""

    def __init__(
        self,
        *,
        job: ClaimedJob,
        runner: Controllable,
        client: BackendClient,
        features: Callable[[], frozenset[str]],
        interval_s: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_lost: Callable[[str], None] = _ignore,
    ) -> None:
        """``on_lost(job_id)`` is told once when the job is lost (see ``lose``)."""
        self._job = job
        self._runner = runner
        self._client = client
        self._features = features
        self._interval_s = interval_s
        self._sleep = sleep
        self._on_lost = on_lost
        self._last_control: str | None = None
        self._failing = False
        self.lost: str | None = None  # why the job was lost, once it was

    @property
    def heartbeats(self) -> bool:
        return "heartbeat" in self._features()

    @property
    def interval_s(self) -> float:
        """Seconds between two heartbeats (or status reads on a v1 backend)."""
        if not self.heartbeats:
            return min(self._interval_s, STATUS_WATCH_MAX_S)
        interval = min(self._interval_s, HEARTBEAT_MAX_S)
        lease = self._job.lease_seconds
        return min(interval, lease / 3) if lease and lease > 0 else interval

    async def watch(self) -> None:
        """Heartbeat (or watch the status) until cancelled or the job is lost."""
        while self.lost is None:
            await self._sleep(self.interval_s)
            await self.check_once()

    async def check_once(self) -> None:
        """One heartbeat (or status read) and what its answer asks."""
        try:
            if self.heartbeats:
                answer = await self._client.heartbeat(self._job.id, self._job.job_token)
                self.apply(answer.control)
            else:
                state = await self._client.get_job_state(self._job.id)
                self.apply("cancel" if state.status == "cancelled" else state.control)
        except AuthError as exc:  # the API key of a status read: the poller says why
            self._failed(exc)
        except HttpStatusError as exc:
            self._refused(exc)
        except ApiError as exc:
            self._failed(exc)
        else:
            if self._failing:
                log.info("job %s: the backend answers again", self._job.id)
            self._failing = False

    def apply(self, control: str | None) -> None:
        """Carry out ``control`` (``cancel``, ``pause``, ``resume``); a repeat is ignored."""
        if control == self._last_control:
            return  # a backend repeats a command until it sees it done
        self._last_control = control
        if control is None or self.lost is not None:
            return
        log.info("job %s: %s requested on the platform", self._job.id, control)
        if control == "cancel":
            self._runner.request_cancel(CANCELLED_ON_PLATFORM)
        elif control == "pause":
            self._runner.request_pause()
        elif control == "resume":
            self._runner.request_resume()

    def lose(self, reason: str) -> None:
        """The backend no longer accepts this job: stop it, and report nothing more."""
        if self.lost is not None:
            return
        self.lost = reason
        log.error("job %s: %s; stopping it, nothing more is reported", self._job.id, reason)
        self._runner.request_cancel(reason)
        self._on_lost(self._job.id)

    def _refused(self, exc: HttpStatusError) -> None:
        current = exc.body.get("current_status") if isinstance(exc.body, dict) else None
        if exc.code == "JOB_NOT_ACTIVE" and current == "cancelled":
            self.apply("cancel")
        elif is_job_gone(exc) or exc.code == "JOB_NOT_ACTIVE":
            self.lose(f"{gone_reason(exc)}: {exc}")
        else:
            self._failed(exc)

    def _failed(self, exc: ApiError) -> None:
        what = "heartbeat" if self.heartbeats else "status check"
        if not self._failing:
            log.warning(
                "job %s: %s failed (%s); the job goes on, next try in %.0fs",
                self._job.id,
                what,
                exc,
                self.interval_s,
            )
        self._failing = True
