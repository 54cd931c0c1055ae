"""The self-update, as the running daemon sees it: offer -> verified build -> switch.

After each successful poll the poller hands the answer to :meth:`Updater.observe`. An
``agent_update`` offer for another version starts, in the background while jobs run,
:meth:`_prepare`: download, verify (SHA-256 and signature, ``install``), unpack into a
new folder, try it. Once the build is ready the daemon claims nothing new and stops
when its running jobs ended (``on_ready``); ``run_agent`` then calls :meth:`restart`,
which records a ``Trial``, renames the stable link to the new build and re-executes
through it (same process id, so a service manager sees no exit).

The new build is on trial until its first successful poll (:meth:`observe` confirms
it); if that does not come within ``trial_s`` (``update_trial_seconds``, default
``TRIAL_S``; :meth:`watch_trial`) it switches the
link back and re-executes the old build, which says why on the page. Each version is
switched to once (``record.attempts``): a failed update never loops; only a download
that failed (the backend or its upstream down, a full disk) is tried again, an hour
later. A downgrade is taken
only when the backend marks it so. The state (``UpdateState``) goes to the page (in
``X-Agent-Info`` as ``update``) and to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training_agent.api import BackendClient
from training_agent.api.models import AgentUpdateOffer, PollResponse, UpdateArchive
from training_agent.errors import TrainingAgentError
from training_agent.update.guard import execute_build, roll_back
from training_agent.update.install import UpdateFailed, try_build, unpack, verify
from training_agent.update.layout import InstallLayout
from training_agent.update.record import CONFIRMED, FAILED, INSTALLED, Trial, UpdateRecord

log = logging.getLogger(__name__)

TRIAL_S = 120.0  # the default of ``update_trial_seconds``: poll within this, or be rolled back
RETRY_S = 3600.0  # a download that failed (backend, upstream, full disk) is tried again then


class UpdateState(enum.StrEnum):
    IDLE = "idle"  # nothing offered, or this version is the one wanted
    AVAILABLE = "available"  # offered, but this install does not update itself (reason)
    PENDING = "pending"  # downloading and checking the offered build
    READY = "ready"  # checked and unpacked: waiting for the running jobs to end
    UPDATING = "updating"  # switching to the new build now
    TRIAL = "trial"  # this is the new build, until its first successful poll
    FAILED = "failed"  # the update to ``version`` failed (reason); this version goes on


@dataclass(frozen=True)
class UpdateStatus:
    state: UpdateState = UpdateState.IDLE
    version: str | None = None
    reason: str | None = None

    def as_info(self) -> dict[str, Any] | None:
        """What ``X-Agent-Info`` and the status API carry (None while idle)."""
        if self.state is UpdateState.IDLE:
            return None
        return {"state": self.state.value, "version": self.version, "reason": self.reason}


def version_tuple(version: str) -> tuple[int, int, int]:
    """Major, minor, patch (``0.3.0rc1`` is ``(0, 3, 0)``; not a version: zeros).

    >>> version_tuple("0.3.0rc1"), version_tuple("dev")
    ((0, 3, 0), (0, 0, 0))
    """
    found = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    if found is None:
        return (0, 0, 0)
    major, minor, patch = (int(part) for part in found.groups())
    return major, minor, patch


class Updater:
    """One agent process's self-update (see the module docstring)."""

    def __init__(
        self,
        *,
        client: BackendClient,
        record: UpdateRecord,
        layout: InstallLayout | None,
        version: str,
        platform: str,
        arch: str,
        keys: tuple[str, ...],
        work_dir: Path,
        disabled: str | None = None,
        trial: Trial | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] = asyncio.sleep,
        try_new_build: Callable[[Path, str], None] = try_build,
        trial_s: float = TRIAL_S,
    ) -> None:
        """``disabled``: why this install does not update itself (None: it does);
        ``trial_s``: how long a new build has for its first successful poll."""
        self._client = client
        self._record = record
        self._layout = layout
        self._version = version
        self._platform = platform
        self._arch = arch
        self._keys = keys
        self._work_dir = work_dir
        self._disabled = disabled
        self._trial = trial
        self._clock = clock
        self._sleep = sleep
        self._try_new_build = try_new_build
        self._trial_s = trial_s
        self._task: asyncio.Task[None] | None = None
        self._staged: Path | None = None
        self._rolled_back = False
        self.on_ready: Callable[[], None] = lambda: None
        self.on_change: Callable[[UpdateStatus], None] = lambda status: None
        self.status = UpdateStatus(UpdateState.TRIAL, version) if trial else self._remembered()

    # -- what the poller tells it -------------------------------------------------------

    def observe(self, answer: PollResponse) -> None:
        """A poll succeeded: confirm a build on trial; start on a new offer."""
        if self._trial is not None:
            self._confirm()
        offer = answer.agent_update
        busy = self._task is not None and not self._task.done()
        if offer is None or offer.version == self._version or busy:
            return
        if self.status.state in (UpdateState.READY, UpdateState.UPDATING):
            return
        archive = self._acceptable(offer)
        if archive is not None:
            self._set(UpdateState.PENDING, offer.version)
            self._task = asyncio.create_task(self._prepare(offer.version, archive))

    def _acceptable(self, offer: AgentUpdateOffer) -> UpdateArchive | None:
        """The build to install from ``offer``, or None (said once, on the page too)."""
        if (self.status.version, self.status.state) == (offer.version, UpdateState.AVAILABLE):
            return None
        if self._disabled is not None:
            log.info("training-agent %s is available: %s", offer.version, self._disabled)
            self._set(UpdateState.AVAILABLE, offer.version, self._disabled)
            return None
        tried = self._record.attempted(offer.version)
        if tried is not None and not self._record.may_retry(offer.version, self._clock()):
            # one attempt per version: never a loop
            if self.status.version != offer.version:
                self._set(UpdateState.FAILED, offer.version, tried.get("reason"))
            return None
        archive = next((a for a in offer.archives if a.arch == self._arch), None)
        older = version_tuple(offer.version) < version_tuple(self._version)
        reason = None
        if older and not offer.downgrade:
            reason = f"refused: {offer.version} is older than {self._version}"
        elif archive is None:
            reason = f"the backend offers no build for {self._platform}-{self._arch}"
        if reason is not None:
            self._fail(offer.version, reason)
            return None
        return archive

    # -- preparing the new build --------------------------------------------------------

    async def _prepare(self, version: str, archive: UpdateArchive) -> None:
        assert self._layout is not None  # _disabled says why when there is none
        download = self._work_dir / f".{archive.filename}.download"
        staged: Path | None = None
        log.info("update to training-agent %s: downloading %s", version, archive.filename)
        try:
            download.unlink(missing_ok=True)
            download.parent.mkdir(parents=True, exist_ok=True)
            await self._client.download_release(self._platform, self._arch, download)
            verify(
                download,
                filename=archive.filename,
                sha256=archive.sha256,
                signature=archive.signature,
                keys=self._keys,
            )
            staged = self._layout.new_folder(version)
            await asyncio.to_thread(unpack, download, staged)
            await asyncio.to_thread(self._try_new_build, staged, version)
        except UpdateFailed as exc:
            self._cleanup(staged)
            self._fail(version, str(exc))
        except TrainingAgentError as exc:  # the download: the backend or its upstream
            self._cleanup(staged)
            self._fail(version, f"{exc}; tried again in an hour", retry=True)
        except OSError as exc:
            self._cleanup(staged)
            why = f"cannot write the new version ({exc.strerror or exc}); tried again in an hour"
            self._fail(version, why, retry=True)
        else:
            self._staged = staged
            self._set(UpdateState.READY, version)
            log.info("update to %s verified; switching once the running jobs ended", version)
            self.on_ready()
        finally:
            with contextlib.suppress(OSError):
                download.unlink(missing_ok=True)

    def _cleanup(self, staged: Path | None) -> None:
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)

    # -- switching ----------------------------------------------------------------------

    @property
    def wants_restart(self) -> bool:
        """Whether the daemon stopped for this updater (switch or roll back, then exec)."""
        return self._staged is not None or self._rolled_back

    def restart(self) -> None:
        """Switch to the staged build (or back, after a failed trial) and re-execute
        through the stable link. A switch that fails is recorded, and the build the link
        still names is executed again: the agent never stays down."""
        assert self._layout is not None
        if self._staged is not None:
            version = self.status.version or "?"
            current = self._layout.current()
            self._record.trial = Trial(
                from_version=self._version,
                from_folder=str(current) if current else "",
                to_version=version,
                to_folder="",
                deadline=self._clock() + self._trial_s,
            )
            try:
                folder = self._layout.activate(self._staged)
                self._record.trial.to_folder = str(folder)
                self._record.note(version, INSTALLED, None, self._clock())
            except OSError as exc:
                self._record.trial = None
                self._fail(version, f"cannot switch to the new version ({exc.strerror or exc})")
            else:
                self._set(UpdateState.UPDATING, version)
                log.warning("switching to training-agent %s; restarting", version)
        execute_build(self._layout.link, self._layout.platform)

    def discard(self) -> None:
        """The agent stops for good (a stop signal came first): drop the staged build;
        the next start prepares it again."""
        if self._staged is not None:
            self._cleanup(self._staged)
            self._staged = None

    # -- the trial of a new build -------------------------------------------------------

    def _confirm(self) -> None:
        trial, self._trial = self._trial, None
        assert trial is not None
        self._record.trial = None
        self._record.note(trial.to_version, CONFIRMED, None, self._clock())
        if self._layout is not None:
            previous = Path(trial.from_folder) if trial.from_folder else None
            self._layout.prune(keep=(self._layout.current(), previous))
        log.info("update to training-agent %s confirmed by a successful poll", self._version)
        self._set(UpdateState.IDLE, None)

    async def watch_trial(self) -> None:
        """Roll back when this build on trial does not poll successfully in time."""
        if self._trial is None:
            return
        await self._sleep(max(0.0, self._trial.deadline - self._clock()))
        if self._trial is not None:
            self.roll_back(
                f"training-agent {self._version} did not reach its first successful "
                f"poll within {self._trial_s:g} s"
            )

    def roll_back(self, reason: str) -> None:
        """Point the stable link at the build before this one and stop for a restart."""
        trial, self._trial = self._trial, None
        if trial is None or self._layout is None:
            return
        roll_back(self._layout, self._record, trial, reason, self._clock())
        self._rolled_back = True
        self.on_ready()

    # -- state --------------------------------------------------------------------------

    def _remembered(self) -> UpdateStatus:
        """After a rollback: the failed version and why, for the page."""
        failed = [(v, a) for v, a in self._record.attempts.items() if a.get("outcome") == FAILED]
        if not failed:
            return UpdateStatus()
        version, attempt = max(failed, key=lambda item: float(item[1].get("at") or 0))
        if version_tuple(version) <= version_tuple(self._version):
            return UpdateStatus()
        return UpdateStatus(UpdateState.FAILED, version, attempt.get("reason"))

    def _fail(self, version: str, reason: str, *, retry: bool = False) -> None:
        log.error("update to training-agent %s failed: %s", version, reason)
        now = self._clock()
        self._record.note(version, FAILED, reason, now, retry_at=now + RETRY_S if retry else None)
        self._set(UpdateState.FAILED, version, reason)

    def _set(self, state: UpdateState, version: str | None, reason: str | None = None) -> None:
        self.status = UpdateStatus(state, version, reason)
        self.on_change(self.status)
