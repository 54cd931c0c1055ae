"""The ``agent_update`` a poll answer offers an agent of another version than
``agent_version`` (``TRAINING_BACKEND_AGENT_VERSION``)::

    "agent_update": {"version": "0.3.0", "downgrade": false, "archives": [
        {"arch": "amd64", "filename": "training-agent-0.3.0-linux-amd64.tar.gz",
         "url": "https://…/api/workers/download/linux?arch=amd64",
         "sha256": "…", "signature": "…" | null}]}

One entry per architecture whose archive this backend can serve (from the releases
directory, or through the release mirror), with the SHA-256 of ``SHA256SUMS`` and the
signature of ``<archive>.sig``. The agent checks both itself, against the keys its own
build trusts: this offer is a hint, never a proof. An older version is offered only
with ``allow_agent_downgrade`` (and says ``"downgrade": true``). Offers are computed at
most every :data:`OFFER_TTL_S` per platform and version, so a poll stays cheap.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from training_backend.errors import ApiError
from training_backend.platforms import parse_platform
from training_backend.schemas.agent import AgentUpdate, UpdateArchive
from training_backend.services.downloads import ARCHES, Artifact, artifact_for, download_url
from training_backend.services.downloads import sha256_of as local_sha256
from training_backend.services.release_mirror import ReleaseMirror
from training_backend.services.releases import SIGNATURE_SUFFIX
from training_backend.settings import BackendSettings, version_tuple

logger = logging.getLogger(__name__)

OFFER_TTL_S = 30.0
MAX_SIGNATURE_BYTES = 4096


@dataclass
class UpdateOffers:
    """What this process offers agents, cached per (platform, version, settings)."""

    mirror: ReleaseMirror
    clock: Callable[[], float] = time.monotonic
    _cache: dict[tuple[object, ...], tuple[float, AgentUpdate | None]] = field(default_factory=dict)

    def offer(
        self,
        settings: BackendSettings,
        *,
        platform: str | None,
        version: str | None,
        backend_url: str,
    ) -> AgentUpdate | None:
        """The update for an agent of ``platform`` and ``version``; None when it is current,
        unknown, would be a refused downgrade, or no archive can be served."""
        checked = parse_platform(platform or "")
        if checked is None or version is None or _nothing_to_offer(settings, version):
            return None
        downgrade = _downgrade(settings, version)
        key = (checked, downgrade, backend_url, settings.agent_version, settings.releases_dir)
        cached = self._cache.get(key)
        if cached is not None and self.clock() - cached[0] < OFFER_TTL_S:
            return cached[1]
        archives = []
        for arch in ARCHES:
            artifact = artifact_for(
                settings.releases_dir, version=settings.agent_version, platform=checked, arch=arch
            )
            entry = self._archive(settings, artifact, backend_url)
            if entry is not None:
                archives.append(entry)
        update = (
            AgentUpdate(version=settings.agent_version, downgrade=downgrade, archives=archives)
            if archives
            else None
        )
        self._cache[key] = (self.clock(), update)
        return update

    @staticmethod
    def nothing_to_offer(
        settings: BackendSettings, *, platform: str | None, version: str | None
    ) -> bool:
        """True when ``offer`` would answer ``None`` without looking at any file: the agent
        is current, says no version or platform, or would need a refused downgrade (what a
        poll asks first, on the event loop)."""
        return parse_platform(platform or "") is None or _nothing_to_offer(settings, version)

    async def for_poll(
        self,
        settings: BackendSettings,
        *,
        platform: str | None,
        version: str | None,
        backend_url: Callable[[], str],
    ) -> AgentUpdate | None:
        """``offer`` for a poll, on the event loop: no thread unless there may be something
        to offer (it reads files, maybe the release mirror)."""
        if self.nothing_to_offer(settings, platform=platform, version=version):
            return None  # the agent is current: no file to read, no thread to take
        return await run_in_threadpool(
            self.offer, settings, platform=platform, version=version, backend_url=backend_url()
        )

    def _archive(
        self, settings: BackendSettings, artifact: Artifact, backend_url: str
    ) -> UpdateArchive | None:
        try:
            if artifact.exists():
                sha256, signature = local_sha256(artifact), _local_signature(artifact)
            elif settings.releases_url is not None:
                sha256 = self.mirror.upstream_sha256(settings, artifact)
                signature = self.mirror.upstream_signature(settings, artifact)
            else:
                return None
        except (ApiError, OSError) as exc:
            logger.info("no update offer of %s: %s", artifact.filename, exc)
            return None
        return UpdateArchive(
            arch=artifact.arch,
            filename=artifact.filename,
            url=download_url(backend_url, artifact),
            sha256=sha256,
            signature=signature,
        )


def _downgrade(settings: BackendSettings, version: str) -> bool:
    try:
        return version_tuple(settings.agent_version) < version_tuple(version)
    except ValueError:  # an agent of a made-up version: offer the configured one
        return False


def _nothing_to_offer(settings: BackendSettings, version: str | None) -> bool:
    if not version or version == settings.agent_version:
        return True
    return _downgrade(settings, version) and not settings.allow_agent_downgrade


def _local_signature(artifact: Artifact) -> str | None:
    path = artifact.path.with_name(artifact.filename + SIGNATURE_SUFFIX)
    try:
        with path.open("rb") as handle:
            return handle.read(MAX_SIGNATURE_BYTES).decode("ascii", errors="replace").strip()
    except FileNotFoundError:
        return None
