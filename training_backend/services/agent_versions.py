"""Refusing agents older than ``min_agent_version``: 426 with where to get a new one.

An agent says its version in ``X-Agent-Version``. With a minimum configured, a poll or a
claim from an older agent (or one that does not say) is answered

    426 {"error": "training-agent 0.1.0 is older than 0.3.0, the oldest version this
         platform accepts", "code": "AGENT_UPGRADE_REQUIRED", "min_version": "0.3.0",
         "download_url": "https://…/api/workers/download/linux"}

before anything is recorded or claimed. Versions compare on major.minor.patch
(``version_tuple``), so ``0.3.0rc1`` counts as ``0.3.0``.
"""

from __future__ import annotations

from training_backend.errors import ApiError
from training_backend.platforms import parse_platform
from training_backend.settings import version_tuple

UPGRADE_REQUIRED = "AGENT_UPGRADE_REQUIRED"


def is_supported(reported: str | None, minimum: str | None) -> bool:
    """Whether an agent reporting ``reported`` may work here.

    >>> is_supported("0.2.1", "0.2.0"), is_supported("0.1.9", "0.2.0"), is_supported(None, None)
    (True, False, True)
    """
    if minimum is None:
        return True
    if reported is None:
        return False
    try:
        return version_tuple(reported) >= version_tuple(minimum)
    except ValueError:  # "dev", "unknown": cannot be shown to be new enough
        return False


def agent_download_url(backend_url: str, platform: str | None) -> str:
    """Where an agent on ``platform`` gets the current build (the list when unknown)."""
    checked = parse_platform(platform or "")
    if checked is None:
        return f"{backend_url}/api/workers/downloads"
    return f"{backend_url}/api/workers/download/{checked}"


def require_supported(
    reported: str | None, *, minimum: str | None, backend_url: str, platform: str | None
) -> None:
    """Raise 426 ``AGENT_UPGRADE_REQUIRED`` unless ``reported`` is at least ``minimum``."""
    if is_supported(reported, minimum):
        return
    said = f"training-agent {reported[:32]}" if reported else "a training-agent of unknown version"
    message = f"{said} is older than {minimum}, the oldest version this platform accepts"
    extra = {"min_version": minimum, "download_url": agent_download_url(backend_url, platform)}
    raise ApiError(426, UPGRADE_REQUIRED, message, extra=extra)
