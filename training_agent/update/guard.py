"""The start of a build on trial, before anything heavy is imported.

``training-agent start`` runs through :func:`guarded_start`. When this process is the
new build of an update (``update.json`` has a ``Trial`` for this version and this
folder), each start is counted; a build that was started more than
:data:`MAX_TRIAL_STARTS` times without reaching a successful poll (a service manager
restarting a crash), whose deadline passed, or whose start fails with an exception or a
non-zero exit before its first successful poll, is rolled back: the stable link goes
back to the old build, the failure is recorded, and the old build is executed in its
place (on Windows: this process exits with ``RELAUNCH_EXIT`` and the launcher starts it,
``layout.py``). When this process is the *old* build after such a rollback, the reason is logged
once. Everything here uses the standard library only, so a new build with a broken
dependency still gets this far.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from training_agent.update.layout import RELAUNCH_EXIT, InstallLayout
from training_agent.update.record import FAILED, Trial, UpdateRecord

log = logging.getLogger(__name__)

MAX_TRIAL_STARTS = 3
RECORD_FILE = "update.json"


def current_trial(record: UpdateRecord, *, version: str, executable: Path) -> Trial | None:
    """The trial this process is (counted once more), or None; the record is saved."""
    trial = record.trial
    if trial is None or trial.to_version != version:
        return None
    if trial.to_folder and Path(trial.to_folder).resolve() != executable.parent:
        return None
    trial.starts += 1
    record.save()
    return trial


def guarded_start(
    start: Callable[[], int],
    *,
    state_dir: Path,
    version: str,
    executable: Path | None = None,
    clock: Callable[[], float] = time.time,
    execute: Callable[[Path], None] | None = None,
    platform: str = sys.platform,
) -> int:
    """Run ``start`` (the daemon); roll a failing build on trial back (module docstring)."""
    frozen = executable is not None or bool(getattr(sys, "frozen", False))
    real = (executable or Path(sys.executable)).resolve()
    layout = InstallLayout.of_executable(real, platform) if frozen else None
    if layout is None:
        return start()
    record = UpdateRecord.load(state_dir / RECORD_FILE)
    trial = current_trial(record, version=version, executable=real)
    if trial is None:
        return start()
    run_old = execute or (lambda link: execute_build(link, layout.platform))
    if trial.starts > MAX_TRIAL_STARTS or clock() > trial.deadline:
        why = f"it was started {trial.starts} times" if trial.starts > MAX_TRIAL_STARTS else None
        reason = f"training-agent {version} did not reach its first successful poll in time"
        roll_back(layout, record, trial, f"{reason} ({why})" if why else reason, clock())
        run_old(layout.link)
        return 1
    try:
        code = start()
    except BaseException as exc:
        if UpdateRecord.load(record.path).trial is None:  # confirmed meanwhile
            raise
        roll_back(layout, record, trial, f"training-agent {version} failed: {exc!r}"[:300], clock())
        run_old(layout.link)
        raise
    if code != 0 and UpdateRecord.load(record.path).trial is not None:
        roll_back(layout, record, trial, f"training-agent {version} exited with {code}", clock())
        run_old(layout.link)
    return code


def roll_back(
    layout: InstallLayout, record: UpdateRecord, trial: Trial, reason: str, now: float
) -> None:
    """Switch the stable link back to ``trial``'s old build and record why."""
    log.error(
        "update to training-agent %s failed: %s; rolling back to %s",
        trial.to_version,
        reason,
        trial.from_version,
    )
    if trial.from_folder:
        layout.point_at(Path(trial.from_folder))
    record.trial = None
    record.note(trial.to_version, FAILED, reason, now)


def execute_build(link: Path, platform: str = sys.platform) -> None:
    """Replace this process with the build ``link`` points at, same arguments. Windows
    has no exec that keeps the process: there this exits with ``RELAUNCH_EXIT``, and the
    launcher that started it (``link``) starts the build ``current`` names now."""
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    if platform == "win32":
        raise SystemExit(RELAUNCH_EXIT)
    os.execv(str(link), [str(link), *sys.argv[1:]])
