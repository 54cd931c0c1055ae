"""The self-update of this process: whether it may update itself, and its ``Updater``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from training_agent.api import BackendClient
from training_agent.commands.version import current_arch
from training_agent.config import Settings
from training_agent.paths import AgentPaths
from training_agent.update.guard import RECORD_FILE
from training_agent.update.layout import InstallLayout
from training_agent.update.record import UpdateRecord
from training_agent.update.signature import trusted_keys
from training_agent.update.updater import Updater, UpdateState

log = logging.getLogger(__name__)

PIP_UPGRADE = (
    "installed with pip: upgrade with 'pipx upgrade training-agent' "
    "(or 'pip install -U training-agent')"
)


def why_not(
    auto_update: bool | None, *, frozen: bool, layout: InstallLayout | None, platform: str
) -> str | None:
    """Why this process does not update itself; None when it does.

    >>> why_not(None, frozen=False, layout=None, platform="linux") == PIP_UPGRADE
    True
    """
    if not frozen:
        return PIP_UPGRADE
    if auto_update is False:
        return "auto_update is off: run the new version's installer, or set auto_update = true"
    if layout is None:
        installer = "install.cmd" if platform == "win32" else "install.sh"
        return (
            f"this executable was not put in place by {installer}: install it with "
            f"{installer} to have it update itself"
        )
    return None


def build_updater(
    settings: Settings, paths: AgentPaths, *, client: BackendClient, version: str, platform: str
) -> Updater:
    """The ``Updater`` of this process (disabled, with the reason, where it cannot act)."""
    frozen = bool(getattr(sys, "frozen", False))
    layout = InstallLayout.of_executable(Path(sys.executable).resolve()) if frozen else None
    record = UpdateRecord.load(paths.state_dir / RECORD_FILE)
    trial = record.trial if layout is not None and record.trial else None
    if trial is not None and trial.to_version != version:
        trial = None
    updater = Updater(
        client=client,
        record=record,
        layout=layout,
        version=version,
        platform=platform,
        arch=current_arch(),
        keys=trusted_keys(),
        work_dir=paths.state_dir,
        disabled=why_not(settings.auto_update, frozen=frozen, layout=layout, platform=sys.platform),
        trial=trial,
        trial_s=settings.update_trial_seconds,
    )
    if updater.status.state is UpdateState.FAILED:
        log.error(
            "the update to training-agent %s failed: %s; staying on %s",
            updater.status.version,
            updater.status.reason,
            version,
        )
    return updater
